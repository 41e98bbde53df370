// Heap objects allocated per forwarded chunk, inside the proxy process (see heap-probe.ts for how
// JSC is asked). The load drives one proxied TCP connection to an echo backend, in windows: full
// GC, traffic, count. A window in which the GC ran cannot be counted (the count restarts), so it
// is dropped and the next window halves; the result is over the clean windows. Two loads:
//   bulk   `totalBytes` pushed in up to 32 MiB windows (large chunks, short writes, drains);
//   small  1 KiB request/response round trips one at a time (many small chunks: any per-chunk
//          JS allocation shows here first).
// Also reported: objects alive after a full GC at the end vs the start (a leak grows this).
// The ideal is 1 object per chunk: the buffer Bun hands to the data handler.

import type { Result } from "../gate/index.ts";
import { VM_METADATA } from "./heap-probe.ts";
import { type Child, spawnBun } from "./procs.ts";

const MiB = 1024 * 1024;

interface End {
  allocated: number;
  chunks: number;
  bytes: number;
  gcInWindow: boolean;
  byType: Record<string, number>;
}

interface Tally {
  allocated: number;
  chunks: number;
  bytes: number;
  clean: number;
  dropped: number;
  byType: Record<string, number>;
}

type Ask = <T>(cmd: string) => Promise<T>;

/** Calibration: a window with no traffic measures the probe's own cost (command parsing). */
async function probeOverhead(ask: Ask): Promise<{ total: number; byType: Record<string, number> }> {
  let best = { total: Infinity, byType: {} as Record<string, number> };
  for (let i = 0; i < 3; i++) {
    await ask("heap-begin");
    const e = await ask<End>("heap-end");
    if (!e.gcInWindow && e.allocated < best.total) best = { total: e.allocated, byType: e.byType };
  }
  return Number.isFinite(best.total) ? best : { total: 0, byType: {} };
}

async function windows(
  ask: Ask,
  overhead: { total: number; byType: Record<string, number> },
  total: number,
  start: number,
  min: number,
  traffic: (amount: number) => Promise<void>,
): Promise<Tally> {
  const t: Tally = { allocated: 0, chunks: 0, bytes: 0, clean: 0, dropped: 0, byType: {} };
  let window = start;
  for (let done = 0; done < total; ) {
    const size = Math.min(window, total - done);
    await ask("heap-begin");
    await traffic(size);
    const e = await ask<End>("heap-end");
    done += size;
    if (e.gcInWindow) {
      t.dropped++;
      window = Math.max(min, window >> 1);
      continue;
    }
    // Large windows amortize the probe's own objects: grow back after a clean one.
    window = Math.min(start, window * 2);
    t.clean++;
    t.allocated += e.allocated - overhead.total;
    t.chunks += e.chunks;
    t.bytes += e.bytes;
    for (const [k, v] of Object.entries(e.byType)) t.byType[k] = (t.byType[k] ?? 0) + v - (overhead.byType[k] ?? 0);
  }
  return t;
}

function perChunkResult(name: string, t: Tally, what: string, overhead: number): Result {
  if (t.chunks === 0) return { name, unit: "objects/chunk", value: null, error: `no GC-free window out of ${t.dropped}` };
  const top = Object.entries(t.byType)
    .filter(([k, v]) => !VM_METADATA.test(k) && Math.abs(v) >= 0.005 * t.chunks)
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
    .slice(0, 6)
    .map(([k, v]) => `${k} ${(v / t.chunks).toFixed(2)}`)
    .join(", ");
  return {
    name,
    unit: "objects/chunk",
    value: t.allocated / t.chunks,
    note:
      `${what}; ${t.clean} GC-free windows (${t.dropped} dropped), ${t.chunks} chunks of ${(t.bytes / t.chunks / 1024).toFixed(1)} KiB avg ` +
      `(both directions); per chunk by type: ${top || "none"}; probe overhead ${overhead} objects/window subtracted, VM metadata cells not counted`,
  };
}

export async function measureHeap(
  totalBytes: number,
  log: (line: string) => void,
  impl: "edgemesh" | "naive" = "edgemesh",
  roundTrips = totalBytes / MiB / 256 >= 4 ? 100_000 : 20_000,
): Promise<Result[]> {
  const load = spawnBun("./heap-load.ts");
  let proxy: Child | null = null;
  try {
    const echoPort = (await load.nextJson<{ port: number }>()).port;
    proxy = spawnBun("./proxy-server.ts", ["--impl", impl, "--count-chunks", "--backend", `heap=TCP:127.0.0.1:${echoPort}`]);
    const p = proxy;
    const hello = await p.nextJson<{ listeners: Record<string, { port: number }> }>(20_000);
    load.send(`connect ${hello.listeners.heap!.port}`);
    await load.nextJson();
    const drive = (cmd: string) => async (amount: number) => {
      load.send(`${cmd} ${amount}`);
      const r = await load.nextJson<{ done?: number; error?: string }>(120_000);
      if (r.error) throw new Error(`heap load: ${r.error}`);
    };
    const ask: Ask = async <T>(cmd: string) => {
      p.send(cmd);
      return p.nextJson<T>(30_000);
    };

    // Warm up both paths: JIT, pools, buffers at steady size.
    await drive("push")(16 * MiB);
    await drive("pingpong")(2_000);
    const overhead = await probeOverhead(ask);
    const live0 = (await ask<{ objectCount: number }>("heap-live")).objectCount;
    const bulk = await windows(ask, overhead, totalBytes, 32 * MiB, 64 * 1024, drive("push"));
    const small = await windows(ask, overhead, roundTrips, 5_000, 100, drive("pingpong"));
    const live1 = (await ask<{ objectCount: number }>("heap-live")).objectCount;
    log(`heap: bulk ${bulk.clean} clean / ${bulk.dropped} dropped windows, ${bulk.chunks} chunks; small ${small.clean} / ${small.dropped}, ${small.chunks} chunks`);
    return [
      perChunkResult("heap.objects_per_chunk", bulk, `${(totalBytes / MiB).toFixed(0)} MiB pushed through one connection and echoed back`, overhead.total),
      perChunkResult("heap.objects_per_chunk_small", small, `${roundTrips} round trips of 1 KiB each way, one at a time`, overhead.total),
      {
        name: "heap.retained_objects",
        unit: "objects",
        value: live1 - live0,
        note: `live objects after a full GC, after minus before both loads (a leak grows this with the load; ~260-520 whatever the amount, 2026-11-25)`,
      },
    ];
  } finally {
    await proxy?.stop();
    await load.stop();
  }
}
