import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSnapshot, saveSnapshot, SnapshotError, SNAPSHOT_FILE } from "../../src/control/kube/index.ts";
import { createPersister } from "../../src/control/kube/persist.ts";
import { createManualClock } from "../../src/control/clock.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const dirs: string[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), "edgemesh-snap-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const svc = (name: string) => ({ kind: "Service", apiVersion: "v1", metadata: { name, namespace: "default" }, spec: { clusterIP: "10.96.0.1" } });

describe("metadata snapshot file", () => {
  test("round-trips objects and the time they were live, leaving no temp file", async () => {
    const d = join(dir(), "nested", "state");
    await saveSnapshot(d, { savedAt: Date.parse("2026-01-02T03:04:05.000Z"), server: "https://api", objects: { Service: [svc("a"), svc("b")], Node: [] } });
    expect(readdirSync(d)).toEqual([SNAPSHOT_FILE]);
    const snap = await loadSnapshot(d);
    expect(snap?.savedAt).toBe(Date.parse("2026-01-02T03:04:05.000Z"));
    expect(snap?.server).toBe("https://api");
    expect(snap?.objects.Service?.map((o) => o.metadata.name)).toEqual(["a", "b"]);
    expect(snap?.objects.Node).toEqual([]);
  });

  test("a missing file is no snapshot, not an error", async () => {
    expect(await loadSnapshot(dir())).toBeUndefined();
  });

  test("corrupt, foreign and incompatible files are refused with a message naming the file", async () => {
    const d = dir();
    const file = join(d, SNAPSHOT_FILE);
    const cases: [string, RegExp][] = [
      ["{not json", /metadata\.json is corrupt/],
      [JSON.stringify({ hello: 1 }), /is not a metadata snapshot/],
      [JSON.stringify({ format: "edgemesh-bun/kube-metadata", version: 2, savedAt: "2026-01-01T00:00:00Z", objects: {} }), /has version 2/],
      [JSON.stringify({ format: "edgemesh-bun/kube-metadata", version: 1, savedAt: "yesterday", objects: {} }), /no valid savedAt/],
      [JSON.stringify({ format: "edgemesh-bun/kube-metadata", version: 1, savedAt: "2026-01-01T00:00:00Z", objects: { Service: [{ metadata: {} }] } }), /has no metadata\.name/],
    ];
    for (const [text, message] of cases) {
      writeFileSync(file, text);
      const err = await loadSnapshot(d).catch((e) => e);
      expect(err).toBeInstanceOf(SnapshotError);
      expect(String(err.message)).toMatch(message);
    }
  });
});

describe("snapshot persister", () => {
  test("writes at once after the first change, then at most once per interval, and a last time on close", async () => {
    const d = dir();
    const clock = createManualClock(1_000_000);
    const metrics = createMetrics();
    let names = ["a"];
    let live = true;
    const p = createPersister({ stateDir: d, server: "s", clock, log: createMemoryLogger(), metrics, intervalMs: 5000, view: () => ({ Service: names.map(svc) }), enabled: () => live });
    const writes = () => metrics.snapshot()["kube_snapshot_writes_total"];
    const settle = () => Bun.sleep(30);
    // A write is file I/O on another tick: wait for it (bounded) rather than guess how long it takes.
    const writesReach = async (n: number) => {
      for (let i = 0; i < 300 && (writes() ?? 0) < n; i++) await Bun.sleep(10);
    };

    p.changed();
    clock.advance(0);
    await writesReach(1);
    expect(writes()).toBe(1);

    names = ["a", "b"];
    p.changed();
    p.changed();
    clock.advance(4999);
    await settle();
    expect(writes()).toBe(1);
    clock.advance(1);
    await writesReach(2);
    expect(writes()).toBe(2);
    expect((await loadSnapshot(d))?.objects.Service?.map((o) => o.metadata.name)).toEqual(["a", "b"]);

    names = ["c"];
    live = false; // e.g. the source fell back to stale data: nothing is written
    p.changed();
    clock.advance(10_000);
    await settle();
    expect(writes()).toBe(2);

    live = true;
    p.changed();
    await p.close();
    expect(writes()).toBe(3);
    expect((await loadSnapshot(d))?.objects.Service?.map((o) => o.metadata.name)).toEqual(["c"]);
  });
});
