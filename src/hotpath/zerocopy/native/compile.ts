// Compiles loop.c with bun:ffi `cc` (TinyCC, built into Bun) once per process, on the main
// thread, so a failure (no libc headers, a Bun without cc) is seen synchronously where it is
// called (setup.ts: the first hand-over, before the worker starts) and the caller can fall back
// to the JS path. The worker links the same machine code
// by address (linkSymbols); the compiled library is kept referenced here for the process's life.

import { cc, type FFIFunction, type Pointer } from "bun:ffi";
import { fileURLToPath } from "node:url";

export const NATIVE_SYMBOLS = {
  nf_create: { args: ["i32", "i32", "i32", "i32", "ptr", "ptr"], returns: "ptr" },
  nf_add: { args: ["ptr", "i32", "i32", "i32"], returns: "i32" },
  nf_run: { args: ["ptr"], returns: "i32" },
  nf_stop: { args: ["ptr"], returns: "i32" },
  nf_clear_done: { args: ["ptr"], returns: "void" },
  nf_pipes: { args: ["ptr"], returns: "i32" },
  nf_pipes_refused: { args: ["ptr"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

export type NativeSymbolName = keyof typeof NATIVE_SYMBOLS;

/** Addresses of the compiled functions, posted to the worker (numbers survive postMessage). */
export type NativeLoop = Record<NativeSymbolName, number>;

let compiled: { lib: unknown; loop: NativeLoop } | null = null;

/**
 * The compiled loop's entry points; throws (with the compiler's message) if it cannot be built.
 * `source` replaces loop.c (tests: a file that does not compile); it is compiled every time.
 */
export function compileNativeLoop(source?: string): NativeLoop {
  if (compiled !== null && source === undefined) return compiled.loop;
  if (process.platform !== "linux") throw new Error("native flow loop: needs Linux (epoll, splice)");
  const lib = cc({ source: source ?? fileURLToPath(new URL("./loop.c", import.meta.url)), symbols: NATIVE_SYMBOLS });
  const loop = {} as NativeLoop;
  for (const name of Object.keys(NATIVE_SYMBOLS) as NativeSymbolName[]) {
    const p = (lib.symbols[name] as unknown as { ptr: Pointer | number | null }).ptr;
    if (typeof p !== "number" || p === 0) throw new Error(`native flow loop: no address for ${name}`);
    loop[name] = p;
  }
  if (source === undefined) compiled = { lib, loop };
  return loop;
}
