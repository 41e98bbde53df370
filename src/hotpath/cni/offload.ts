// Turning a frame read from an offloading TUN (virtio_net_hdr + packet) into the plain IP packets
// a peer without FEATURE_CNI_VNET expects (EdgeMesh's beta, or our agent without offload): a
// partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) is completed, a TCP segmentation-offload
// superpacket is cut into MSS-sized segments with their own lengths, IDs, sequence numbers,
// flags and checksums (what the kernel's GSO would do). This is the compatibility path: it
// copies and sums every byte in JS. Between our offloading agents frames pass untouched.

/** virtio_net_hdr (little-endian): flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16, csum_offset u16. */
export const VNET_F_NEEDS_CSUM = 1;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;
const HDR = 10;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** Upper bound of the plain bytes `framesToPlain` writes for the frame at src[off, off+len). */
export function plainBound(src: Uint8Array, off: number, len: number): number {
  const gso = src[off + 1]! & ~GSO_ECN;
  if (gso === GSO_NONE) return len - HDR;
  const mss = src[off + 4]! | (src[off + 5]! << 8);
  if (mss === 0) return len - HDR;
  // Each segment repeats the headers; hdr_len is a hint, so bound them by the largest legal ones.
  return len - HDR + Math.ceil((len - HDR) / mss) * (60 + 60);
}

/**
 * Writes the plain IP packet(s) of the frame src[off, off+len) to dst at dstOff. Returns the
 * bytes written, or -1 when the frame cannot be turned into packets (unsupported GSO type,
 * headers inconsistent with the lengths). dst needs plainBound() bytes of room.
 */
export function framesToPlain(src: Uint8Array, off: number, len: number, dst: Uint8Array, dstOff: number): { bytes: number; packets: number } | undefined {
  const gso = src[off + 1]! & ~GSO_ECN;
  const pkt = off + HDR;
  const total = len - HDR;
  if (gso === GSO_NONE) {
    dst.set(src.subarray(pkt, pkt + total), dstOff);
    if ((src[off]! & VNET_F_NEEDS_CSUM) !== 0) {
      const start = src[off + 6]! | (src[off + 7]! << 8);
      const field = start + (src[off + 8]! | (src[off + 9]! << 8));
      if (field + 2 > total) return undefined;
      completeChecksum(dst, dstOff, total, start, field);
    }
    return { bytes: total, packets: 1 };
  }
  if (gso !== GSO_TCPV4 && gso !== GSO_TCPV6) return undefined;
  const v4 = gso === GSO_TCPV4;
  if (total < 40 || (src[pkt]! >> 4) !== (v4 ? 4 : 6)) return undefined;
  const ipHdr = v4 ? (src[pkt]! & 15) * 4 : 40;
  if ((v4 ? src[pkt + 9] : src[pkt + 6]) !== 6) return undefined; // TCP (no IPv6 extension headers)
  const tcp = ipHdr;
  if (total < tcp + 20) return undefined;
  const hdrLen = tcp + (src[pkt + tcp + 12]! >> 4) * 4;
  const mss = src[off + 4]! | (src[off + 5]! << 8);
  const payload = total - hdrLen;
  if (mss === 0 || payload < 0) return undefined;
  const segments = Math.max(1, Math.ceil(payload / mss));
  const seq0 = readU32(src, pkt + tcp + 4);
  const id0 = v4 ? (src[pkt + 4]! << 8) | src[pkt + 5]! : 0;
  const flags = src[pkt + tcp + 13]!;
  let d = dstOff;
  for (let k = 0; k < segments; k++) {
    const segLen = Math.min(mss, payload - k * mss);
    const ipLen = hdrLen + segLen;
    dst.set(src.subarray(pkt, pkt + hdrLen), d);
    dst.set(src.subarray(pkt + hdrLen + k * mss, pkt + hdrLen + k * mss + segLen), d + hdrLen);
    if (v4) {
      writeU16(dst, d + 2, ipLen);
      writeU16(dst, d + 4, (id0 + k) & 0xffff);
      writeU16(dst, d + 10, 0);
      writeU16(dst, d + 10, ~fold(sumWords(dst, d, d + ipHdr, 0)) & 0xffff);
    } else {
      writeU16(dst, d + 4, ipLen - 40);
    }
    writeU32(dst, d + tcp + 4, (seq0 + k * mss) >>> 0);
    let f = flags;
    if (k < segments - 1) f &= ~(TCP_FIN | TCP_PSH);
    if (k > 0) f &= ~TCP_CWR;
    dst[d + tcp + 13] = f;
    writeU16(dst, d + tcp + 16, 0);
    let acc = v4 ? sumWords(dst, d + 12, d + 20, 0) : sumWords(dst, d + 8, d + 40, 0);
    acc += 6 + (ipLen - tcp);
    acc = sumWords(dst, d + tcp, d + ipLen, acc);
    writeU16(dst, d + tcp + 16, ~fold(acc) & 0xffff);
    d += ipLen;
  }
  return { bytes: d - dstOff, packets: segments };
}

/** The checksum field holds the pseudo-header sum; sum from `start` to the end and store it. */
function completeChecksum(b: Uint8Array, p: number, total: number, start: number, field: number): void {
  let value = ~fold(sumWords(b, p + start, p + total, 0)) & 0xffff;
  const v4 = b[p]! >> 4 === 4;
  if (value === 0 && (v4 ? b[p + 9] : b[p + 6]) === 17) value = 0xffff; // UDP: 0 means "none"
  writeU16(b, p + field, value);
}

/** One's-complement sum of big-endian 16-bit words over b[start, end) added to `acc`. */
export function sumWords(b: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function writeU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 255;
  b[at + 1] = v & 255;
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 255;
  b[at + 2] = (v >>> 8) & 255;
  b[at + 3] = v & 255;
}
