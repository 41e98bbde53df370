// Heap objects allocated per forwarded chunk, inside the proxy process (see heap-probe.ts for how
// JSC is asked). The load pushes `totalBytes` through one proxied TCP connection to an echo
// backend, in windows: full GC, push, count. A window in which the GC ran cannot be counted (the
// count restarts), so it is dropped and the window halves; the result is over the clean windows.
// Also reported: objects still alive after a full GC at the end vs the start (a leak shows here).
// The ideal is 1 object per chunk: the buffer Bun hands to the data handler.

import type { Result } from "../gate/index.ts";
import { VM_METADATA } from "./heap-probe.ts";
import { spawnBun } from "./procs.ts";

const MiB = 1024 * 1024;
const WINDOW_START = 32 * MiB;
const WINDOW_MIN = 64 * 1024;

interface End {
  allocated: number;
  chunks: number;
  bytes: number;
  gcInWindow: boolean;
  byType: Record<string, number>;
}

export async function measureHeap(totalBytes: number, log: (line: string) => void, impl: "edgemesh" | "naive" = "edgemesh"): Promise<Result[]> {
  const load = spawnBun("./heap-load.ts");
  const echoPort = (await load.nextJson<{ port: number }>()).port;
  const proxy = spawnBun("./proxy-server.ts", ["--impl", impl, "--count-chunks", "--backend", `heap=TCP:127.0.0.1:${echoPort}`]);
  try {
    const hello = await proxy.nextJson<{ listeners: Record<string, { port: number }> }>(20_000);
    load.send(`connect ${hello.listeners.heap!.port}`);
    await load.nextJson();
    const push = async (bytes: number) => {
      load.send(`push ${bytes}`);
      const r = await load.nextJson<{ done?: number; error?: string }>(60_000);
      if (r.error) throw new Error(`heap load: ${r.error}`);
    };
    const ask = async <T>(cmd: string): Promise<T> => {
      proxy.send(cmd);
      return proxy.nextJson<T>(30_000);
    };

    await push(16 * MiB); // warm up: JIT, pools, buffers at steady size
    // Calibration: a window with no traffic measures the probe's own cost (command parsing).
    let overhead = Infinity;
    let overheadByType: Record<string, number> = {};
    for (let i = 0; i < 3; i++) {
      await ask("heap-begin");
      const e = await ask<End>("heap-end");
      if (!e.gcInWindow && e.allocated < overhead) {
        overhead = e.allocated;
        overheadByType = e.byType;
      }
    }
    if (!Number.isFinite(overhead)) overhead = 0;

    const live0 = (await ask<{ objectCount: number }>("heap-live")).objectCount;
    let window = WINDOW_START;
    let pushed = 0;
    let allocated = 0;
    let chunks = 0;
    let bytes = 0;
    let clean = 0;
    let dropped = 0;
    const byType: Record<string, number> = {};
    while (pushed < totalBytes) {
      const size = Math.min(window, totalBytes - pushed);
      await ask("heap-begin");
      await push(size);
      const e = await ask<End>("heap-end");
      pushed += size;
      if (e.gcInWindow) {
        dropped++;
        window = Math.max(WINDOW_MIN, window >> 1);
        continue;
      }
      // Large windows amortize the probe's own objects: grow back after a clean one.
      window = Math.min(WINDOW_START, window * 2);
      clean++;
      allocated += e.allocated - overhead;
      chunks += e.chunks;
      bytes += e.bytes;
      for (const [k, v] of Object.entries(e.byType)) byType[k] = (byType[k] ?? 0) + v - (overheadByType[k] ?? 0);
    }
    const live1 = (await ask<{ objectCount: number }>("heap-live")).objectCount;
    const top = Object.entries(byType)
      .filter(([k, v]) => !VM_METADATA.test(k) && Math.abs(v) >= 0.005 * Math.max(1, chunks))
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .slice(0, 6)
      .map(([k, v]) => `${k} ${(v / Math.max(1, chunks)).toFixed(2)}`)
      .join(", ");
    log(`heap: ${clean} clean windows, ${dropped} dropped (GC inside), ${chunks} chunks, ${(bytes / MiB).toFixed(0)} MiB counted`);
    const perChunk = chunks > 0 ? allocated / chunks : NaN;
    return [
      chunks > 0
        ? {
            name: "heap.objects_per_chunk",
            unit: "objects/chunk",
            value: perChunk,
            note:
              `${(pushed / MiB).toFixed(0)} MiB pushed through one connection (both directions counted), ${clean} GC-free windows ` +
              `(${dropped} dropped), ${chunks} chunks of ${(bytes / Math.max(1, chunks) / 1024).toFixed(1)} KiB avg; per chunk by type: ${top}; ` +
              `probe overhead ${overhead} objects/window subtracted; VM metadata cells (Structure, code) not counted`,
          }
        : { name: "heap.objects_per_chunk", unit: "objects/chunk", value: null, error: `no GC-free window out of ${dropped}` },
      {
        name: "heap.retained_objects",
        unit: "objects",
        value: live1 - live0,
        note: `live objects after a full GC, after minus before pushing ${(pushed / MiB).toFixed(0)} MiB (a leak grows this with the push)`,
      },
    ];
  } finally {
    await proxy.stop();
    await load.stop();
  }
}
