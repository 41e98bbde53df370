// What the packet pump needs from outside, as narrow interfaces: the TUN device (src/host's
// TunDevice fits), the tunnel's CNI streams, the table. main wires the real ones; tests may
// hand in their own.

import type { CniHandler, OpenedCniStream } from "../../tunnel/index.ts";

/** The TUN device's data-plane side; every call is allocation-free. */
export interface CniDevice {
  readonly mtu: number;
  /** Every packet read or written starts with a 10-byte virtio_net_hdr. */
  readonly vnetHdr: boolean;
  /** One packet into buf[offset..offset+max): its length, 0 when none waits, or -errno. */
  read(buf: Uint8Array, offset: number, max: number): number;
  /** One packet (with its virtio header when vnetHdr): bytes written or -errno. */
  write(buf: Uint8Array, offset: number, length: number): number;
  /** `head` + buf[offset..offset+length) as one packet: bytes written or -errno. */
  writeWithHead(head: Uint8Array, buf: Uint8Array, offset: number, length: number): number;
  /** a[aOff..aOff+aLen) + b[bOff..bOff+bLen) as one packet (writev): bytes written or -errno. */
  writeSplit(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number;
  /** Calls onReadable on the main thread whenever packets wait (it reads until 0 and returns
   * how many it read: while that is not 0 the device may call it again at once). */
  watch(onReadable: () => number): void;
}

export interface CniTunnel {
  openCniStream(node: string, features: number, signal?: AbortSignal): Promise<OpenedCniStream>;
  handleCni(handler: CniHandler): void;
}
