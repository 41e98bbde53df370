// Heap object accounting inside the proxy process, driven over stdin by the heap benchmark.
// JSC's heapStats().objectTypeCounts counts every cell not yet swept, so between a full GC and the
// next collection its growth is exactly the number of objects allocated. A WeakRef to a fresh
// object tells whether a collection happened inside the window (then the window is discarded).
// objectCount after a full GC at both ends of the whole push tells what was retained (leaks).

import { heapStats } from "bun:jsc";
import { chunks } from "./chunk-counter.ts";

interface Window {
  types: Record<string, number>;
  chunks: number;
  bytes: number;
  sentinel: WeakRef<object>;
}

let open: Window | null = null;

/**
 * VM bookkeeping cells (shapes, property tables, compiled code), not objects a program allocates:
 * their counts move with JIT activity and with the probe's own heapStats() result, so they are
 * reported apart and not counted as allocations.
 */
export const VM_METADATA = /^(Structure|PropertyTable|StructureRareData|StructureChain|SymbolTable|SparseArrayValueMap|.*CodeBlock.*|.*Executable.*|Unlinked.*)$/;

function sumCounts(types: Record<string, number>): number {
  let n = 0;
  for (const k in types) if (!VM_METADATA.test(k)) n += types[k]!;
  return n;
}

/** Full GC, then remember the counts. */
export function begin(): { objectCount: number } {
  Bun.gc(true);
  const stats = heapStats();
  open = { types: { ...stats.objectTypeCounts }, chunks: chunks.count, bytes: chunks.bytes, sentinel: new WeakRef({}) };
  return { objectCount: stats.objectCount };
}

/** Objects allocated since begin(), by type, and whether a GC spoiled the window. */
export function end(): { allocated: number; chunks: number; bytes: number; gcInWindow: boolean; byType: Record<string, number> } {
  if (!open) throw new Error("heap-end without heap-begin");
  const gcInWindow = open.sentinel.deref() === undefined;
  const after = heapStats().objectTypeCounts;
  const byType: Record<string, number> = {};
  for (const k of Object.keys(after)) {
    const d = after[k]! - (open.types[k] ?? 0);
    if (d !== 0) byType[k] = d;
  }
  const result = {
    allocated: sumCounts(after) - sumCounts(open.types),
    chunks: chunks.count - open.chunks,
    bytes: chunks.bytes - open.bytes,
    gcInWindow,
    byType,
  };
  open = null;
  return result;
}

/** objectCount after a full GC: live objects only. */
export function live(): { objectCount: number } {
  Bun.gc(true);
  return { objectCount: heapStats().objectCount };
}
