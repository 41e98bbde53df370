// Loading a system library through bun:ffi: the first of several names (soname, unversioned,
// musl, macOS) that opens and binds wins; the outcome, found or not, is kept for the process.

/** The first of `names` for which `bind` (dlopen + wrap) succeeds, or undefined. */
export function bindFirst<T>(names: readonly string[], bind: (name: string) => T): T | undefined {
  for (const name of names) {
    try {
      return bind(name);
    } catch {
      // not installed under this name (or a symbol is missing): try the next
    }
  }
  return undefined;
}

/** A getter that binds on first use (bindFirst) and returns the same result ever after. */
export function nativeLibrary<T>(names: readonly string[], bind: (name: string) => T): () => T | undefined {
  let loaded: { lib: T | undefined } | undefined;
  return () => (loaded ??= { lib: bindFirst(names, bind) }).lib;
}

/** libc under glibc and musl (x86_64, aarch64). */
export const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"] as const;
