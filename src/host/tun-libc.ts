// The libc calls behind the TUN device, bound through the host's one bun:ffi loader
// (native.ts). Loaded lazily by each thread that uses it: the main thread (open, ioctl, read,
// write) and the TUN watcher's worker (poll). Lengths and results are i32/u64 so no call
// allocates a BigInt.
//
// errno: bun:ffi has no errno accessor; we read libc's thread-local errno through
// __errno_location() right after a call returned -1 (nothing runs in between that could
// clobber it: the callers allocate nothing there).

import { dlopen, read, type Pointer } from "bun:ffi";
import { LIBC_NAMES, nativeLibrary } from "./native.ts";

export const EAGAIN = 11;
export const EINTR = 4;
export const EBUSY = 16;
export const EPERM = 1;
export const ENOENT = 2;
export const EINVAL = 22;

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;

const SYMBOLS = {
  __errno_location: { args: [], returns: "ptr" },
  open: { args: ["cstring", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  // ioctl(2) is variadic; every request used here takes an int or a pointer, passed as u64.
  ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  writev: { args: ["i32", "ptr", "i32"], returns: "i32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
} as const;

export type TunLibc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

const load = nativeLibrary(LIBC_NAMES, (name) => {
  const lib = dlopen(name, SYMBOLS);
  const errnoPtr = lib.symbols.__errno_location() as Pointer | null;
  if (errnoPtr === null) throw new Error("__errno_location returned null");
  return { libc: lib.symbols, errno: (): number => read.i32(errnoPtr, 0) };
});

/** libc for this thread, or undefined where it cannot be loaded (not Linux, no glibc/musl). */
export function tunLibc(): { libc: TunLibc; errno: () => number } | undefined {
  return process.platform === "linux" ? load() : undefined;
}
