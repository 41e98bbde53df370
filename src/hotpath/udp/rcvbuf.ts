// A larger receive buffer for the UDP service sockets. One socket takes every client's datagrams
// for a service port; when hundreds of clients start flows at once while the event loop is busy
// (opening flows, a GC pause), the kernel queues them here, and the default buffer (208 KiB, and
// each small datagram is charged ~1 KiB of it) drops the excess: in the 20,000-flow test those
// were the only datagrams lost (UdpRcvbufErrors). Bun has no option for it: setsockopt through
// bun:ffi on the socket's fd (Bun 1.4 exposes `fd` on UDP sockets as on TCP ones). SO_RCVBUFFORCE
// passes net.core.rmem_max (the agent is privileged); without CAP_NET_ADMIN (dev mode) we fall
// back to SO_RCVBUF, which the kernel caps at rmem_max. Failing both, the default stays.

import { dlopen, FFIType, ptr } from "bun:ffi";

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"];

type SetSockOpt = (fd: number, level: number, name: number, value: number, len: number) => number;
let setsockopt: SetSockOpt | null | undefined;

function bind(): SetSockOpt | null {
  if (process.platform !== "linux") return null;
  for (const name of LIBC_NAMES) {
    try {
      const lib = dlopen(name, { setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 } });
      return lib.symbols.setsockopt as unknown as SetSockOpt;
    } catch {
      // try the next name
    }
  }
  return null;
}

/** Asks for `bytes` of receive buffer on the UDP socket `sock`; true when the kernel took it. */
export function raiseReceiveBuffer(sock: object, bytes: number): boolean {
  const fd = (sock as { fd?: unknown }).fd;
  if (typeof fd !== "number" || fd < 0) return false;
  if (setsockopt === undefined) setsockopt = bind();
  if (setsockopt === null) return false;
  const value = new Int32Array([bytes]);
  const p = ptr(value) as unknown as number;
  return setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, p, 4) === 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, p, 4) === 0;
}
