import { describe, expect, test } from "bun:test";
import { fold, frameLength, framesToPlain, GSO_NONE, GSO_TCPV4, GSO_TCPV6, ipPacketLength, ipv4Destination, plainBound, sumWords, VNET_F_NEEDS_CSUM } from "../../src/hotpath/cni/index.ts";

/** An IPv4 TCP packet: 20-byte IP header, 20-byte TCP header, `payload`. */
function tcp4(payload: Uint8Array, o: { seq?: number; flags?: number; id?: number } = {}): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, o.id ?? 100);
  p[6] = 0x40; // DF
  p[8] = 64;
  p[9] = 6;
  p.set([10, 244, 1, 10], 12);
  p.set([10, 244, 2, 10], 16);
  v.setUint16(20, 40000);
  v.setUint16(22, 9100);
  v.setUint32(24, o.seq ?? 1000);
  v.setUint32(28, 777);
  p[32] = 5 << 4;
  p[33] = o.flags ?? 0x18; // PSH|ACK
  v.setUint16(34, 65535);
  p.set(payload, 40);
  return p;
}

function tcp6(payload: Uint8Array, seq = 5000): Uint8Array {
  const p = new Uint8Array(60 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, 20 + payload.length);
  p[6] = 6;
  p[7] = 64;
  p[8] = 0xfd;
  p[23] = 1;
  p[24] = 0xfd;
  p[39] = 2;
  v.setUint32(44, seq);
  p[52] = 5 << 4;
  p[53] = 0x19; // FIN|PSH|ACK
  p.set(payload, 60);
  return p;
}

/** Independent checksum checks: a correct header/segment sums to 0xffff. */
function ipv4HeaderOk(p: Uint8Array, at = 0): boolean {
  return fold(sumWords(p, at, at + 20, 0)) === 0xffff;
}
function tcpOk(p: Uint8Array, at: number, v6 = false): boolean {
  const len = v6 ? 40 + ((p[at + 4]! << 8) | p[at + 5]!) : (p[at + 2]! << 8) | p[at + 3]!;
  const l4 = v6 ? 40 : 20;
  let acc = v6 ? sumWords(p, at + 8, at + 40, 0) : sumWords(p, at + 12, at + 20, 0);
  acc += 6 + (len - l4);
  return fold(sumWords(p, at + l4, at + len, acc)) === 0xffff;
}

function vnet(flags: number, gso: number, gsoSize: number, csumStart = 0, csumOffset = 0): Uint8Array {
  const h = new Uint8Array(10);
  const v = new DataView(h.buffer);
  h[0] = flags;
  h[1] = gso;
  v.setUint16(2, 40, true);
  v.setUint16(4, gsoSize, true);
  v.setUint16(6, csumStart, true);
  v.setUint16(8, csumOffset, true);
  return h;
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe("frames: IP packets delimit themselves", () => {
  test("IPv4 and IPv6 lengths, with and without a virtio header", () => {
    const p4 = tcp4(new Uint8Array(100));
    expect(ipPacketLength(p4, 0, p4.length)).toBe(140);
    expect(frameLength(concat(new Uint8Array(10), p4), 0, 150, 10)).toBe(150);
    const p6 = tcp6(new Uint8Array(10));
    expect(ipPacketLength(p6, 0, p6.length)).toBe(70);
  });
  test("too few bytes to tell: 0; not an IP packet or an impossible header: -1", () => {
    const p4 = tcp4(new Uint8Array(10));
    expect(ipPacketLength(p4, 0, 3)).toBe(0);
    expect(frameLength(p4, 0, 9, 10)).toBe(0);
    expect(ipPacketLength(new Uint8Array([0x20, 0, 0, 40]), 0, 4)).toBe(-1);
    expect(ipPacketLength(new Uint8Array([0x45, 0, 0, 12]), 0, 4)).toBe(-1); // total < header
    expect(ipPacketLength(new Uint8Array([0x44, 0, 0, 40]), 0, 4)).toBe(-1); // IHL < 5
  });
  test("the IPv4 destination as a number", () => {
    expect(ipv4Destination(tcp4(new Uint8Array(0)), 0)).toBe(((10 << 24) | (244 << 16) | (2 << 8) | 10) >>> 0);
  });
});

describe("offload frames to plain packets (peers without virtio headers, e.g. EdgeMesh)", () => {
  test("a plain frame loses its header; a partial checksum is completed", () => {
    const payload = new Uint8Array(333).map((_, i) => i * 7);
    const pkt = tcp4(payload);
    // What the kernel hands over with NEEDS_CSUM: the checksum field holds the pseudo-header sum.
    const pseudo = fold(sumWords(pkt, 12, 20, 0) + 6 + 20 + payload.length);
    new DataView(pkt.buffer).setUint16(36, pseudo);
    const frame = concat(vnet(VNET_F_NEEDS_CSUM, GSO_NONE, 0, 20, 16), pkt);
    const out = new Uint8Array(plainBound(frame, 0, frame.length));
    const r = framesToPlain(frame, 0, frame.length, out, 0)!;
    expect(r).toEqual({ bytes: pkt.length, packets: 1 });
    expect(tcpOk(out, 0)).toBe(true);
    expect(out.subarray(40, r.bytes)).toEqual(payload);
  });

  test("a UDP checksum that comes out 0 is sent as 0xffff", () => {
    // A UDP packet whose complete sum folds to 0xffff (so ~sum = 0): payload chosen to get there.
    const p = new Uint8Array(28 + 2);
    p[0] = 0x45;
    p[3] = p.length;
    p[9] = 17;
    new DataView(p.buffer).setUint16(24, 10); // UDP length field (2 + 8), kept simple
    const frame = concat(vnet(VNET_F_NEEDS_CSUM, GSO_NONE, 0, 20, 6), p);
    const before = fold(sumWords(frame, 10 + 20, frame.length, 0));
    // Make the sum 0xffff by writing the complement into the payload.
    new DataView(frame.buffer).setUint16(10 + 28, (0xffff - before) & 0xffff);
    const out = new Uint8Array(64);
    framesToPlain(frame, 0, frame.length, out, 0);
    expect((out[26]! << 8) | out[27]!).toBe(0xffff);
  });

  test("a TCPv4 superpacket is cut into MSS segments with lengths, IDs, seqs, flags and checksums", () => {
    const payload = new Uint8Array(10_000).map((_, i) => (i * 13) & 255);
    const pkt = tcp4(payload, { seq: 0xffff_f000, flags: 0x99 /* CWR|PSH|ACK|FIN */, id: 0xfffe });
    const frame = concat(vnet(VNET_F_NEEDS_CSUM, GSO_TCPV4, 1448, 20, 16), pkt);
    const out = new Uint8Array(plainBound(frame, 0, frame.length));
    const r = framesToPlain(frame, 0, frame.length, out, 0)!;
    expect(r.packets).toBe(7);
    let at = 0;
    let got = 0;
    for (let k = 0; k < r.packets; k++) {
      const len = (out[at + 2]! << 8) | out[at + 3]!;
      const seg = Math.min(1448, 10_000 - k * 1448);
      expect(len).toBe(40 + seg);
      expect(ipv4HeaderOk(out, at)).toBe(true);
      expect(tcpOk(out, at)).toBe(true);
      expect((out[at + 4]! << 8) | out[at + 5]!).toBe((0xfffe + k) & 0xffff);
      expect(new DataView(out.buffer).getUint32(at + 24)).toBe((0xffff_f000 + k * 1448) >>> 0); // wraps
      const flags = out[at + 33]!;
      expect(flags & 0x80).toBe(k === 0 ? 0x80 : 0); // CWR on the first only
      expect(flags & 0x09).toBe(k === r.packets - 1 ? 0x09 : 0); // FIN|PSH on the last only
      expect(out.subarray(at + 40, at + len)).toEqual(payload.subarray(k * 1448, k * 1448 + seg));
      got += seg;
      at += len;
    }
    expect(got).toBe(10_000);
    expect(at).toBe(r.bytes);
  });

  test("a TCPv6 superpacket too", () => {
    const payload = new Uint8Array(3000).fill(9);
    const frame = concat(vnet(VNET_F_NEEDS_CSUM, GSO_TCPV6, 1428, 40, 16), tcp6(payload));
    const out = new Uint8Array(plainBound(frame, 0, frame.length));
    const r = framesToPlain(frame, 0, frame.length, out, 0)!;
    expect(r.packets).toBe(3);
    let at = 0;
    for (let k = 0; k < 3; k++) {
      const len = 40 + ((out[at + 4]! << 8) | out[at + 5]!);
      expect(tcpOk(out, at, true)).toBe(true);
      at += len;
    }
    expect(at).toBe(r.bytes);
  });

  test("an unsupported GSO type (UDP) or a GSO size of 0 is refused, not guessed", () => {
    const pkt = tcp4(new Uint8Array(100));
    expect(framesToPlain(concat(vnet(0, 3, 1000), pkt), 0, pkt.length + 10, new Uint8Array(400), 0)).toBeUndefined();
    expect(framesToPlain(concat(vnet(0, GSO_TCPV4, 0), pkt), 0, pkt.length + 10, new Uint8Array(400), 0)).toBeUndefined();
  });
});
