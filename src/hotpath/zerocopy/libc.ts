// The few libc calls the zero-copy engine needs, through bun:ffi. Linux only (splice(2),
// epoll(7), eventfd(2)). Loaded lazily by each thread that uses it: the main thread (dup, pipes,
// eventfd writes) and the engine's worker (the epoll loop).
//
// errno: bun:ffi has no errno accessor, so we read libc's thread-local errno through
// __errno_location() right after a call returned -1. Nothing runs between the call and that read
// except our own non-allocating JS, so no runtime code can clobber it in between.

import { dlopen, read, type Pointer } from "bun:ffi";

export const EAGAIN = 11;
export const EINTR = 4;
export const EPIPE = 32;
export const ECONNRESET = 104;

export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const F_DUPFD_CLOEXEC = 1030;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;

export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;

export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;

export const SHUT_WR = 1;
export const SOL_SOCKET = 1;
export const SO_LINGER = 13;
export const SO_ERROR = 4;

/** struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16). */
export const EPOLL_EVENT_SIZE = process.arch === "x64" ? 12 : 16;
export const EPOLL_DATA_OFFSET = process.arch === "x64" ? 4 : 8;

const SYMBOLS = {
  __errno_location: { args: [], returns: "ptr" },
  close: { args: ["i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  // The length is capped by the caller at the pipe size (<= 2^31), so i32 results suffice and
  // avoid BigInt allocations on every call.
  splice: { args: ["i32", "ptr", "i32", "ptr", "u32", "u32"], returns: "i32" },
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
} as const;

export type Libc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

let cached: { libc: Libc; errnoPtr: Pointer } | null = null;

/** libc symbols for this thread; throws on a platform without them (not Linux/glibc). */
export function loadLibc(): { libc: Libc; errno: () => number } {
  if (cached === null) {
    if (process.platform !== "linux") throw new Error("zerocopy: splice(2) needs Linux");
    const lib = dlopen("libc.so.6", SYMBOLS);
    const errnoPtr = lib.symbols.__errno_location() as Pointer | null;
    if (errnoPtr === null) throw new Error("zerocopy: __errno_location returned null");
    cached = { libc: lib.symbols, errnoPtr };
  }
  const { libc, errnoPtr } = cached;
  return { libc, errno: () => read.i32(errnoPtr, 0) };
}
