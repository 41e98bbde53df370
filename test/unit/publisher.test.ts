import { describe, expect, test } from "bun:test";
import { createManualClock } from "../../src/control/clock.ts";
import { createPublisher } from "../../src/control/publisher.ts";
import { createObjectStore } from "../../src/control/store.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import type { RouteTable } from "../../src/control/table.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const service = (name: string, port = 80, protocol = "TCP"): KubeObject => ({
  kind: "Service",
  metadata: { name, namespace: "default" },
  spec: { clusterIP: "10.96.0.1", ports: [{ port, protocol }] },
});

function setup() {
  const clock = createManualClock(5_000);
  const store = createObjectStore();
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const publisher = createPublisher({
    store,
    clock,
    log,
    metrics,
    minIntervalMs: 100,
    compileOptions: { serviceFilterMode: "FilterIfLabelExists" },
  });
  const seen: RouteTable[] = [];
  publisher.subscribe((t) => seen.push(t));
  return { clock, store, log, metrics, publisher, seen };
}

describe("publisher", () => {
  test("starts with the empty table and publishes version 1 on the next tick", () => {
    const { clock, store, publisher, seen } = setup();
    store.upsert("Service", service("web"));
    expect(publisher.current().version).toBe(0);
    clock.advance(0);
    expect(publisher.current().version).toBe(1);
    expect(publisher.current().compiledAt).toBe(5_000);
    expect(publisher.current().ports.map((p) => p.key)).toEqual(["default/web:80/TCP"]);
    expect(seen.map((t) => t.version)).toEqual([1]);
  });

  test("a burst of store changes is compiled and published once", () => {
    const { clock, store, publisher, seen, metrics } = setup();
    publisher.flush();
    for (let i = 0; i < 100; i++) store.upsert("Service", service(`svc-${i}`));
    clock.advance(0);
    expect(seen.map((t) => t.version)).toEqual([1, 2]);
    // A second burst inside the min interval waits for its end, then is one publish too.
    for (let i = 100; i < 200; i++) store.upsert("Service", service(`svc-${i}`));
    clock.advance(99);
    expect(seen.length).toBe(2);
    clock.advance(1);
    expect(seen.map((t) => t.version)).toEqual([1, 2, 3]);
    expect(publisher.current().ports.length).toBe(200);
    expect(metrics.snapshot()["control_compiles_total"]).toBe(3);
    expect(metrics.snapshot()["control_table_version"]).toBe(3);
  });

  test("publish latency runs from the first change of a burst to its publish; compile time is timed", () => {
    const { clock, store, publisher, metrics } = setup();
    publisher.flush(); // the start-up flush: nothing was waiting, no latency observed
    expect(metrics.snapshot()["control_publish_latency_seconds_count"]).toBe(0);
    store.upsert("Service", service("a"));
    clock.advance(0); // published at once: latency 0
    clock.advance(30);
    store.upsert("Service", service("b")); // 30 ms after the last run: waits until 100 ms
    clock.advance(40);
    store.upsert("Service", service("c")); // same burst; its latency counts from b
    clock.advance(30);
    const snap = metrics.snapshot();
    expect(snap["control_publish_latency_seconds_count"]).toBe(2);
    expect(snap["control_publish_latency_seconds_sum"]).toBeCloseTo(0.07, 9);
    expect(snap["control_compile_duration_seconds_count"]).toBe(3);
    expect(snap["control_last_publish_timestamp_seconds"]).toBe(5.1);
  });

  test("versions increase strictly and each table reaches subscribers once", () => {
    const { clock, store, seen } = setup();
    for (let i = 0; i < 5; i++) {
      store.upsert("Service", service(`s${i}`));
      clock.advance(100);
    }
    const versions = seen.map((t) => t.version);
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    expect(seen[4]!.ports.length).toBe(5);
  });

  test("nothing is published before the first store change or flush", () => {
    const clock = createManualClock();
    const store = createObjectStore();
    store.upsert("Service", service("early"));
    const publisher = createPublisher({ store, clock, log: createMemoryLogger(), compileOptions: { serviceFilterMode: "FilterIfLabelExists" } });
    clock.advance(1_000);
    expect(publisher.current().version).toBe(0);
    expect(publisher.flush().ports.map((p) => p.name)).toEqual(["early"]);
    expect(publisher.current().version).toBe(1);
  });

  test("nothing is published when the store did not change", () => {
    const { clock, publisher, seen } = setup();
    const first = publisher.flush();
    expect(first.version).toBe(1);
    expect(publisher.flush()).toBe(first);
    clock.advance(10_000);
    expect(seen.length).toBe(1);
  });

  test("flush compiles synchronously without waiting for the interval", () => {
    const { clock, store, publisher, seen } = setup();
    publisher.flush();
    store.upsert("Service", service("api"));
    const table = publisher.flush();
    expect(table.version).toBe(2);
    expect(table).toBe(publisher.current());
    expect(seen.length).toBe(2);
    clock.advance(1_000); // the pending run finds nothing new
    expect(seen.length).toBe(2);
  });

  test("a throwing subscriber is logged and the others still get the table", () => {
    const { clock, store, publisher, seen, log, metrics } = setup();
    publisher.subscribe(() => {
      throw new Error("consumer bug");
    });
    const late: number[] = [];
    publisher.subscribe((t) => late.push(t.version));
    store.upsert("Service", service("web"));
    clock.advance(0);
    expect(seen.length).toBe(1);
    expect(late).toEqual([1]);
    expect(log.lines.some((l) => l.includes("subscriber failed") && l.includes("consumer bug"))).toBe(true);
    expect(metrics.snapshot()["control_subscriber_errors_total"]).toBe(1);
  });

  test("unsubscribe and stop end notifications", () => {
    const { clock, store, publisher, seen } = setup();
    const other: number[] = [];
    const off = publisher.subscribe((t) => other.push(t.version));
    store.upsert("Service", service("a"));
    clock.advance(0);
    off();
    store.upsert("Service", service("b"));
    clock.advance(100);
    expect(other).toEqual([1]);
    expect(seen.length).toBe(2);
    publisher.stop();
    store.upsert("Service", service("c"));
    clock.advance(1_000);
    expect(seen.length).toBe(2);
    expect(clock.pending()).toBe(0);
    expect(publisher.current().version).toBe(2);
  });

  test("compileOptions.warn gets each distinct warning once while it persists", () => {
    const clock = createManualClock();
    const store = createObjectStore();
    const warned: string[] = [];
    const log = createMemoryLogger();
    createPublisher({ store, clock, log, compileOptions: { serviceFilterMode: "FilterIfLabelExists", warn: (m) => warned.push(m) } });
    store.upsert("Service", service("sig", 3868, "SCTP"));
    clock.advance(0);
    store.upsert("Service", service("other"));
    clock.advance(100);
    expect(warned.length).toBe(1);
    expect(warned[0]).toContain("default/sig");
    expect(log.lines.filter((l) => l.includes("SCTP")).length).toBe(0);
  });

  test("a compile warning is logged once while it persists, again when it returns", () => {
    const { clock, store, log } = setup();
    const warnCount = () => log.lines.filter((l) => l.includes("SCTP")).length;
    store.upsert("Service", service("sig", 3868, "SCTP"));
    clock.advance(0);
    store.upsert("Service", service("other"));
    clock.advance(100);
    expect(warnCount()).toBe(1);
    store.remove("Service", "default/sig");
    clock.advance(100);
    store.upsert("Service", service("sig", 3868, "SCTP"));
    clock.advance(100);
    expect(warnCount()).toBe(2);
  });
});
