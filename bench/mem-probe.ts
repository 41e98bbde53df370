// Preloaded into an agent by `bench/mem-bench.ts --probe` (bun --preload), never in the gate's
// measured runs: on SIGUSR2 the process runs a full GC and writes what JSC holds to
// $MEM_PROBE_DIR/<pid>.json: heap size and capacity, extra (external) memory, object count, the
// largest object types, and process.memoryUsage(). RSS is read from /proc by the bench itself.

import { heapStats, memoryUsage as mallocUsage } from "bun:jsc";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.MEM_PROBE_DIR;
if (dir) {
  process.on("SIGUSR2", () => {
    // mimalloc's own figures (Bun's native allocations and typed-array storage), before and
    // after the full GC: in use now, committed now, and the peaks.
    const mallocBefore = mallocUsage();
    Bun.gc(true);
    const mallocAfter = mallocUsage();
    const h = heapStats();
    const types = Object.entries(h.objectTypeCounts)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25);
    // The heap snapshot's cells by class, with their estimated sizes (cell plus what it owns:
    // string characters, array storage, buffer bytes), largest first.
    const snap = Bun.generateHeapSnapshot() as unknown as { nodes: number[]; nodeClassNames: string[] };
    const bytesByClass = new Map<string, { bytes: number; count: number }>();
    for (let i = 0; i + 3 < snap.nodes.length; i += 4) {
      const name = snap.nodeClassNames[snap.nodes[i + 2]!] ?? "?";
      const e = bytesByClass.get(name) ?? { bytes: 0, count: 0 };
      e.bytes += snap.nodes[i + 1]!;
      e.count++;
      bytesByClass.set(name, e);
    }
    const byClass = [...bytesByClass].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, 30);
    const doc = {
      heapSize: h.heapSize,
      heapCapacity: h.heapCapacity,
      extraMemorySize: h.extraMemorySize,
      objectCount: h.objectCount,
      protectedObjectCount: h.protectedObjectCount,
      memoryUsage: process.memoryUsage(),
      malloc: { before: mallocBefore, after: mallocAfter },
      topTypes: Object.fromEntries(types),
      snapshotBytes: [...bytesByClass.values()].reduce((n, e) => n + e.bytes, 0),
      bytesByClass: Object.fromEntries(byClass.map(([k, v]) => [k, `${(v.bytes / 1048576).toFixed(2)} MiB / ${v.count}`])),
    };
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(doc));
  });
}

// Experiment: a young-generation (MEM_PROBE_GC_FULL=1: full) collection every MEM_PROBE_GC_MS (how much of the peak is
// garbage waiting for a collection?).
const gcMs = Number(process.env.MEM_PROBE_GC_MS ?? 0);
if (gcMs > 0) setInterval(() => Bun.gc(process.env.MEM_PROBE_GC_FULL === "1"), gcMs).unref();
