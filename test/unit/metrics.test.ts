import { heapStats } from "bun:jsc";
import { describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createMetrics,
  exponentialBuckets,
  LabelBudget,
  LATENCY_BUCKETS_SECONDS,
  registerProcessMetrics,
} from "../../src/metrics/index.ts";
import { parseSamples, promtoolCheck } from "../support/promtool.ts";

describe("exposition", () => {
  test("counters, gauges, histograms and labels pass Prometheus's own parser and linter", async () => {
    const m = createMetrics();
    m.counter("proxy_tcp_accepted_total", "TCP connections accepted").value = 5;
    m.counter("proxy_service_connections_total", "per service port", { namespace: "default", service: "web", port: "80" }).value = 2;
    m.counter("weird_total", 'a help with a backslash \\ and\na newline', { v: 'quote " back\\slash\nnewline' }).value = 1;
    m.gauge("iptables_rules", "rules").value = 12;
    m.gaugeFn("dns_cache_entries", "entries", () => 3);
    m.gaugeFn("broken", "a gauge whose reader throws", () => {
      throw new Error("boom");
    });
    const h = m.histogram("dns_request_duration_seconds", "duration", LATENCY_BUCKETS_SECONDS, { source: "local" });
    h.observe(0.0001);
    h.observe(0.003);
    h.observe(100);
    registerProcessMetrics(m, { version: "1.2.3", revision: "abc" });
    const text = m.render();
    const r = await promtoolCheck(text);
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
    const s = parseSamples(text);
    expect(s.get('edgemesh_proxy_service_connections_total{namespace="default",port="80",service="web"}')).toBe(2);
    expect(s.get("edgemesh_broken")).toBeNaN();
    expect(s.get('edgemesh_dns_request_duration_seconds_bucket{source="local",le="0.00025"}')).toBe(1);
    expect(s.get('edgemesh_dns_request_duration_seconds_bucket{source="local",le="0.004"}')).toBe(2);
    expect(s.get('edgemesh_dns_request_duration_seconds_bucket{source="local",le="8.192"}')).toBe(2);
    expect(s.get('edgemesh_dns_request_duration_seconds_bucket{source="local",le="+Inf"}')).toBe(3);
    expect(s.get('edgemesh_dns_request_duration_seconds_count{source="local"}')).toBe(3);
    expect(s.get('edgemesh_dns_request_duration_seconds_sum{source="local"}')).toBeCloseTo(100.0031, 6);
    expect(s.get('edgemesh_build_info{bun_version="' + Bun.version + '",revision="abc",version="1.2.3"}')).toBe(1);
  });

  test("promtool catches what the conventions forbid (the checker is not a rubber stamp)", async () => {
    const m = createMetrics();
    m.counter("requests", "a counter without _total").value = 1;
    m.gauge("compile_last_ms", "milliseconds").value = 3;
    const r = await promtoolCheck(m.render());
    expect(r.output).toContain("edgemesh_requests counter metrics should have \"_total\" suffix");
    expect(r.output).toContain("edgemesh_compile_last_ms metric names should not contain abbreviated units");
    const broken = await promtoolCheck("# TYPE x counter\nx{a=\"1\" 1\n");
    expect(broken.code).not.toBe(0);
  });

  test("a value exactly on a bound falls in that bucket (le is inclusive)", () => {
    const h = createMetrics().histogram("x_seconds", "x", [0.1, 0.2]);
    h.observe(0.1);
    h.observe(0.2);
    h.observe(0.2000001);
    expect([...h.buckets]).toEqual([1, 1, 1]);
  });

  test("histogram bounds must increase", () => {
    expect(() => createMetrics().histogram("x_seconds", "x", [0.2, 0.1])).toThrow("buckets must increase");
  });

  test("exponential buckets match client_golang's (CoreDNS request duration)", () => {
    expect(exponentialBuckets(0.00025, 2, 4)).toEqual([0.00025, 0.0005, 0.001, 0.002]);
    expect(LATENCY_BUCKETS_SECONDS).toHaveLength(16);
    expect(LATENCY_BUCKETS_SECONDS.at(-1)).toBe(8.192);
  });

  test("observing into a histogram and bumping a counter allocate nothing", () => {
    const m = createMetrics();
    const h = m.histogram("x_seconds", "x", LATENCY_BUCKETS_SECONDS);
    const c = m.counter("x_total", "x");
    const run = (n: number) => {
      for (let i = 0; i < n; i++) {
        h.observe(i * 1e-5);
        c.value++;
      }
    };
    run(10_000); // JIT warm-up
    // Between a full GC and the next collection, objectTypeCounts grows by every cell allocated
    // (as bench/macro/heap-probe.ts counts); VM metadata cells are JIT bookkeeping, not ours.
    Bun.gc(true);
    const before = cells();
    run(100_000);
    const allocated = cells() - before;
    // One object per observation would show as >= 100000; what is left is the JIT's and the
    // test runner's own (a few hundred cells, whatever the count).
    expect(allocated).toBeLessThan(1000);
    expect(h.count).toBe(110_000);
  });

  test("a removed series leaves the exposition; the family goes with its last series", () => {
    const m = createMetrics();
    m.counter("svc_total", "x", { service: "a" }).value = 1;
    m.counter("svc_total", "x", { service: "b" }).value = 2;
    expect(m.sum("svc_total")).toBe(3);
    m.remove("svc_total", { service: "a" });
    expect(m.render()).not.toContain('service="a"');
    m.remove("svc_total", { service: "b" });
    expect(m.render()).not.toContain("svc_total");
    expect(m.families_()).toEqual([]);
  });

  test("a name registered as two types is refused", () => {
    const m = createMetrics();
    m.counter("x_total", "x");
    expect(() => m.gauge("x_total", "x")).toThrow("registered as counter and gauge");
  });

  test("invalid names and labels are refused at registration", () => {
    const m = createMetrics();
    expect(() => m.counter("bad-name_total", "x")).toThrow("invalid metric name");
    expect(() => m.counter("x_total", "x", { "bad-label": "v" })).toThrow("invalid metric label name");
    expect(() => m.histogram("h_seconds", "x", [1], { le: "1" })).toThrow("invalid metric label name");
  });
});

const VM_METADATA = /^(Structure|PropertyTable|StructureRareData|StructureChain|SymbolTable|SparseArrayValueMap|.*CodeBlock.*|.*Executable.*|Unlinked.*)$/;
function cells(): number {
  const types = heapStats().objectTypeCounts;
  let n = 0;
  for (const k in types) if (!VM_METADATA.test(k)) n += types[k]!;
  return n;
}

describe("LabelBudget", () => {
  test("the first max keys get a series each; later ones share the overflow until a slot frees", () => {
    const b = new LabelBudget(2);
    expect(b.take("a")).toBe(true);
    expect(b.take("b")).toBe(true);
    expect(b.take("a")).toBe(true); // already held
    expect(b.take("c")).toBe(false);
    b.release("a");
    expect(b.take("c")).toBe(true);
    expect(b.size).toBe(2);
  });
});

describe("process metrics", () => {
  test("read this process: resident memory, CPU, fds, limits, start time", () => {
    const m = createMetrics();
    registerProcessMetrics(m, { version: "0.0.0", revision: "unknown" });
    const s = parseSamples(m.render());
    expect(s.get("process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
    expect(s.get("process_virtual_memory_bytes")).toBeGreaterThan(s.get("process_resident_memory_bytes")!);
    expect(s.get("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(s.get("process_open_fds")).toBeGreaterThanOrEqual(3);
    expect(s.get("process_max_fds")).toBeGreaterThanOrEqual(s.get("process_open_fds")!);
    const start = s.get("process_start_time_seconds")!;
    expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
  });

  test("take their numbers from /proc: a fake proc root shows through", () => {
    const root = mkdtempSync(join(tmpdir(), "proc-"));
    mkdirSync(join(root, "fd"));
    for (const fd of ["0", "1", "2", "7"]) writeFileSync(join(root, "fd", fd), "");
    writeFileSync(join(root, "status"), "Name:\tedgemesh\nVmSize:\t  204800 kB\nVmRSS:\t   51200 kB\n");
    writeFileSync(join(root, "limits"), "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n");
    const m = createMetrics();
    registerProcessMetrics(m, { version: "0.0.0", revision: "unknown" }, root);
    const s = parseSamples(m.render());
    expect(s.get("process_resident_memory_bytes")).toBe(51200 * 1024);
    expect(s.get("process_virtual_memory_bytes")).toBe(204800 * 1024);
    expect(s.get("process_open_fds")).toBe(4);
    expect(s.get("process_max_fds")).toBe(1048576);
  });
});
