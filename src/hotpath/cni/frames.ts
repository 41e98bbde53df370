// Frames on a CNI stream: [virtio_net_hdr (10 bytes), when negotiated] + one IP packet, back to
// back. There is no length prefix of our own: the IP header says how long the packet is, as in
// EdgeMesh's beta (ParseIPFrame). Pure functions over a buffer; no allocation.

/**
 * Length of the IP packet at buf[off] with `avail` bytes present: the length, 0 when more bytes
 * are needed to tell, -1 when the bytes cannot start an IP packet.
 */
export function ipPacketLength(buf: Uint8Array, off: number, avail: number): number {
  if (avail < 1) return 0;
  const b0 = buf[off]!;
  const version = b0 >> 4;
  if (version === 4) {
    if (avail < 4) return 0;
    const len = (buf[off + 2]! << 8) | buf[off + 3]!;
    const ihl = (b0 & 15) * 4;
    return ihl < 20 || len < ihl ? -1 : len;
  }
  if (version === 6) {
    if (avail < 6) return 0;
    return 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
  }
  return -1;
}

/** Frame length (header + packet), 0 when more bytes are needed, -1 when malformed. */
export function frameLength(buf: Uint8Array, off: number, avail: number, hdr: number): number {
  if (avail < hdr) return 0;
  const n = ipPacketLength(buf, off + hdr, avail - hdr);
  return n <= 0 ? n : n + hdr;
}

/** Destination of the IPv4 packet at buf[off], as an unsigned 32-bit number. */
export function ipv4Destination(buf: Uint8Array, off: number): number {
  return ((buf[off + 16]! << 24) | (buf[off + 17]! << 16) | (buf[off + 18]! << 8) | buf[off + 19]!) >>> 0;
}
