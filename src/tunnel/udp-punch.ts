// Sends a hole-punch datagram whose UDP source port is our QUIC listen port, through a raw
// socket (bun:ffi). Why raw: js-libp2p-quic dials from a separate client socket on an ephemeral
// port and gives no access to the listener's socket, which is bound without SO_REUSEPORT, so no
// ordinary socket can send from the listen port. A punch from that port makes our NAT open the
// mapping listenPort <-> peer, so the peer's QUIC dial reaches our listener (go-libp2p sends the
// same punch from its shared QUIC socket). Needs CAP_NET_RAW; the agent runs as root for
// iptables anyway. Linux only.

import { dlopen, FFIType, ptr } from "bun:ffi";
import { isIPv4 } from "node:net";
import { LIBC_NAMES, nativeLibrary } from "../host/native.ts";

const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_UDP = 17;
const SOCKADDR_IN_BYTES = 16;
const UDP_HEADER_BYTES = 8;
/** A few bytes no QUIC endpoint mistakes for a packet (too short even for a stateless reset). */
const PUNCH_PAYLOAD = new TextEncoder().encode("edgemesh-punch");

export type PunchSender = (srcPort: number, ip: string, port: number) => boolean;

interface RawLibc {
  socket(domain: number, type: number, proto: number): number;
  sendto(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrLen: number): number;
  close(fd: number): number;
}

/** The three libc calls, bound on first use; undefined when libc cannot be opened. */
const openLibc = nativeLibrary(LIBC_NAMES, (path): RawLibc => {
  const lib = dlopen(path, {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
  return {
    socket: (d, t, p) => lib.symbols.socket(d, t, p) as number,
    sendto: (fd, buf, len, flags, addr, addrLen) => Number(lib.symbols.sendto(fd, ptr(buf), len, flags, ptr(addr), addrLen)),
    close: (fd) => lib.symbols.close(fd) as number,
  };
});

/** The UDP datagram (header + payload) a raw IPPROTO_UDP socket sends; the kernel adds the IP
 * header. Checksum 0 means "none" for UDP over IPv4. */
export function punchDatagram(srcPort: number, dstPort: number, payload: Uint8Array = PUNCH_PAYLOAD): Uint8Array {
  const out = new Uint8Array(UDP_HEADER_BYTES + payload.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, out.length);
  v.setUint16(6, 0);
  out.set(payload, UDP_HEADER_BYTES);
  return out;
}

/** struct sockaddr_in for ip (IPv4 dotted quad); the port is unused by raw sockets. */
export function sockaddrIn(ip: string): Uint8Array {
  const out = new Uint8Array(SOCKADDR_IN_BYTES);
  new DataView(out.buffer).setUint16(0, AF_INET, true); // sa_family is host order (little endian on x86-64/arm64)
  const octets = ip.split(".").map(Number);
  out.set(octets, 4);
  return out;
}

/**
 * A PunchSender backed by one raw socket, opened on first use (null when raw sockets are not
 * available: no libc or no CAP_NET_RAW; the caller then skips hole punching). Returns false
 * when a send fails; never throws.
 */
export function createRawPunchSender(): { send: PunchSender; close(): void } | null {
  const c = openLibc();
  if (!c) return null;
  const fd = c.socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return null;
  let open = true;
  return {
    send(srcPort, ip, port) {
      if (!open || !isIPv4(ip)) return false;
      const dgram = punchDatagram(srcPort, port);
      return c.sendto(fd, dgram, dgram.length, 0, sockaddrIn(ip), SOCKADDR_IN_BYTES) === dgram.length;
    },
    close() {
      if (open) c.close(fd);
      open = false;
    },
  };
}
