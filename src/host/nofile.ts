// RLIMIT_NOFILE: Bun has no setrlimit, so call libc through bun:ffi. Each proxied TCP connection
// holds two descriptors, so the soft limit bounds the connection count. We raise soft to hard and
// carry on with whatever we get: EdgeMesh's agent exits when it cannot set 64000, which is wrong
// on hosts (like these) whose hard limit is lower.

import { dlopen, FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import { LIBC_NAMES, nativeLibrary } from "./native.ts";

/** RLIMIT_NOFILE on Linux (x86_64, arm64, riscv; not mips/sparc). */
const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

export interface NofileLimits {
  /** Soft limit before we touched it. */
  readonly before: number;
  readonly soft: number;
  readonly hard: number;
  /** Set when the limit could not be read or raised (we carry on regardless). */
  readonly error?: string;
}

interface Rlimit {
  getrlimit(resource: number, out: BigUint64Array): number;
  setrlimit(resource: number, value: BigUint64Array): number;
}

/** getrlimit/setrlimit, bound on first use; undefined when libc cannot be opened. */
const openLibc = nativeLibrary(LIBC_NAMES, (path): Rlimit => {
  const lib = dlopen(path, {
    getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  });
  return {
    getrlimit: (r, out) => lib.symbols.getrlimit(r, out) as number,
    setrlimit: (r, v) => lib.symbols.setrlimit(r, v) as number,
  };
});

/** Raise the soft descriptor limit to the hard one (capped by fs.nr_open if hard is unlimited). */
export function raiseNofileLimit(want = Number.POSITIVE_INFINITY): NofileLimits {
  const lib = process.platform === "linux" ? openLibc() : null;
  if (!lib) return { ...fromProc(), error: "libc not reachable through bun:ffi" };
  const cur = new BigUint64Array(2);
  if (lib.getrlimit(RLIMIT_NOFILE, cur) !== 0) return { ...fromProc(), error: "getrlimit failed" };
  const before = toNumber(cur[0]!);
  let hard = cur[1]! === RLIM_INFINITY ? BigInt(nrOpen()) : cur[1]!;
  const wanted = Number.isFinite(want) ? BigInt(Math.floor(want)) : hard;
  const target = wanted < hard ? wanted : hard;
  if (target <= cur[0]!) return { before, soft: before, hard: toNumber(cur[1]!) };
  const next = new BigUint64Array([target, cur[1]!]);
  const rc = lib.setrlimit(RLIMIT_NOFILE, next);
  lib.getrlimit(RLIMIT_NOFILE, cur);
  hard = cur[1]!;
  return {
    before,
    soft: toNumber(cur[0]!),
    hard: toNumber(hard),
    ...(rc !== 0 ? { error: `setrlimit(${target}) failed` } : {}),
  };
}

function toNumber(v: bigint): number {
  return v === RLIM_INFINITY ? Number.POSITIVE_INFINITY : Number(v);
}

function nrOpen(): number {
  try {
    return Number(readFileSync("/proc/sys/fs/nr_open", "utf8").trim()) || 1048576;
  } catch {
    return 1048576;
  }
}

/** Fallback reader when FFI is unavailable: /proc/self/limits. */
function fromProc(): { before: number; soft: number; hard: number } {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const [soft, hard] = (line ?? "").replace("Max open files", "").trim().split(/\s+/).map((v) => (v === "unlimited" ? Infinity : Number(v)));
    return { before: soft ?? NaN, soft: soft ?? NaN, hard: hard ?? NaN };
  } catch {
    return { before: NaN, soft: NaN, hard: NaN };
  }
}
