// IP text -> bytes and reverse names, for building templates (control-plane speed, not hot path).

/** 4 bytes, or null when `ip` is not dotted-quad IPv4. */
export function parseIPv4(ip: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let digits = 0;
  let v = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i === ip.length ? 46 : ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 3 || v > 255) return null;
      out[part++] = v;
      v = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      v = v * 10 + (c - 48);
      digits++;
    } else {
      return null;
    }
  }
  return part === 4 ? out : null;
}

/** 16 bytes, or null when `ip` is not IPv6 (with :: and an optional trailing dotted quad). */
export function parseIPv6(ip: string): Uint8Array | null {
  const at = ip.indexOf("%"); // zone id: not part of the address
  let text = at >= 0 ? ip.slice(0, at) : ip;
  if (!text.includes(":")) return null;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (!v4) return null;
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = text.slice(0, lastColon + 1) + "0:0"; // placeholders, overwritten below
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === "") return [];
    const groups: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      groups.push(parseInt(g, 16));
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !rest) return null;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  if (tail.length === 2) {
    groups[6] = tail[0]!;
    groups[7] = tail[1]!;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i]! >>> 8;
    out[i * 2 + 1] = groups[i]! & 0xff;
  }
  return out;
}

/** The PTR owner name for an address: d.c.b.a.in-addr.arpa or nibbles.ip6.arpa. */
export function reverseName(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[3]}.${bytes[2]}.${bytes[1]}.${bytes[0]}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) {
    nibbles.push((bytes[i]! & 0x0f).toString(16), (bytes[i]! >>> 4).toString(16));
  }
  return nibbles.join(".") + ".ip6.arpa";
}

/** CoreDNS's endpoint label for an IP without hostname: dots/colons become dashes. */
export function dashedIP(ip: string): string {
  return ip.replace(/[.:]/g, "-");
}
