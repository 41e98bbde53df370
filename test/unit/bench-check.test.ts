// The benchmark gate's own logic: floors parsing, the comparison, and the table. The benchmarks
// are not run here (timing belongs in bench/); these tests make sure the gate cannot pass by
// accident: typos in floors.json, crashed or missing benchmarks and inverted bounds all fail.

import { describe, expect, test } from "bun:test";
import { combineProcesses, evaluate, FloorsError, lastJson, median, normalizeExternal, parseFloors, ratioResult, renderTable, retryTargets, summarize, type Result } from "../../bench/gate/index.ts";

const floorsText = JSON.stringify({
  floors: {
    "tcp.bulk.proxy": { min: 0.4, target: 0.75, comment: "measured 0.6x" },
    "compile.10k_services": { max: 100, target: 100, comment: "measured 60 ms" },
    "rss.peak": { max: 80, on: "value", target: 30, comment: "measured 45 MB" },
  },
});

const bulk = (ratio: number): Result => ({
  name: "tcp.bulk.proxy",
  unit: "Gbit/s",
  value: ratio * 20,
  reference: { name: "direct", value: 20 },
  ratio,
  runs: [ratio],
});
const compile = (ms: number): Result => ({ name: "compile.10k_services", unit: "ms", value: ms, runs: [ms] });
const rss = (mb: number): Result => ({ name: "rss.peak", unit: "MB", value: mb });

describe("parseFloors", () => {
  test("reads min and max floors with their defaults for what is gated", () => {
    const floors = parseFloors(floorsText);
    expect(floors.get("tcp.bulk.proxy")).toEqual({ on: "ratio", direction: "min", limit: 0.4, target: 0.75, comment: "measured 0.6x" });
    expect(floors.get("compile.10k_services")).toMatchObject({ on: "value", direction: "max", limit: 100 });
  });

  test("refuses a typo in a key, naming it", () => {
    const text = JSON.stringify({ floors: { "a.b": { mni: 0.4, comment: "x" } } });
    expect(() => parseFloors(text)).toThrow(/floors\.a\.b\.mni: unknown key/);
  });

  test("refuses both or neither of min and max", () => {
    expect(() => parseFloors(JSON.stringify({ floors: { a: { min: 1, max: 2, comment: "x" } } }))).toThrow(FloorsError);
    expect(() => parseFloors(JSON.stringify({ floors: { a: { comment: "x" } } }))).toThrow(/exactly one/);
  });

  test("refuses a floor without a comment saying what was measured", () => {
    expect(() => parseFloors(JSON.stringify({ floors: { a: { min: 1 } } }))).toThrow(/floors\.a\.comment/);
  });

  test("refuses a non-number limit and a bad 'on'", () => {
    expect(() => parseFloors(JSON.stringify({ floors: { a: { min: "0.4", comment: "x" } } }))).toThrow(/floors\.a\.min: expected a finite number/);
    expect(() => parseFloors(JSON.stringify({ floors: { a: { min: 1, on: "rate", comment: "x" } } }))).toThrow(/floors\.a\.on/);
  });

  test("refuses text that is not JSON or has no floors object", () => {
    expect(() => parseFloors("{")).toThrow(/not JSON/);
    expect(() => parseFloors("[]")).toThrow(/"floors" object/);
  });

  test("the floors file in the repo parses and every floor has a comment", async () => {
    const floors = parseFloors(await Bun.file(new URL("../../bench/floors.json", import.meta.url)).text());
    expect(floors.size).toBeGreaterThan(5);
    for (const floor of floors.values()) expect(floor.comment.length).toBeGreaterThan(10);
  });
});

describe("evaluate", () => {
  const floors = parseFloors(floorsText);

  test("passes when every gated number is on the right side of its floor", () => {
    const v = evaluate([bulk(0.5), compile(60), rss(45)], floors);
    expect(v.ok).toBe(true);
    expect(v.rows.map((r) => r.status)).toEqual(["PASS", "PASS", "PASS"]);
  });

  test("fails a ratio below its floor and a time above its ceiling", () => {
    expect(evaluate([bulk(0.39), compile(60), rss(45)], floors).ok).toBe(false);
    const v = evaluate([bulk(0.5), compile(101), rss(45)], floors);
    expect(v.ok).toBe(false);
    expect(v.rows.find((r) => r.name === "compile.10k_services")!.status).toBe("FAIL");
  });

  test("a number exactly on the floor passes", () => {
    expect(evaluate([bulk(0.4), compile(100), rss(80)], floors).ok).toBe(true);
  });

  test("a floor whose benchmark reported nothing is MISSING and fails", () => {
    const v = evaluate([bulk(0.5), compile(60)], floors);
    expect(v.ok).toBe(false);
    expect(v.rows.find((r) => r.name === "rss.peak")!.status).toBe("MISSING");
  });

  test("a crashed benchmark fails even without a floor", () => {
    const v = evaluate([bulk(0.5), compile(60), rss(45), { name: "udp.pps", unit: "pkt/s", value: null, error: "boom" }], floors);
    expect(v.ok).toBe(false);
    expect(v.counts.ERROR).toBe(1);
  });

  test("NOT MEASURED is reported but does not fail the gate", () => {
    const v = evaluate([{ name: "tcp.bulk.proxy", unit: "Gbit/s", value: null, ratio: null, notMeasured: "hotpath missing" }, compile(60), rss(45)], floors);
    expect(v.ok).toBe(true);
    expect(v.counts["NOT MEASURED"]).toBe(1);
  });

  test("a result lacking the number its floor gates is an error, not a pass", () => {
    const v = evaluate([{ name: "tcp.bulk.proxy", unit: "Gbit/s", value: 10 }, compile(60), rss(45)], floors);
    expect(v.rows[0]!.status).toBe("ERROR");
    expect(v.ok).toBe(false);
  });

  test("results without a floor are INFO; targets are judged separately from floors", () => {
    const v = evaluate([bulk(0.6), compile(60), rss(45), { name: "lb.rr", unit: "ns/op", value: 3 }], floors);
    expect(v.ok).toBe(true);
    expect(v.rows.find((r) => r.name === "lb.rr")!.status).toBe("INFO");
    expect(v.rows.find((r) => r.name === "tcp.bulk.proxy")!.targetMet).toBe(false);
    expect(v.rows.find((r) => r.name === "compile.10k_services")!.targetMet).toBe(true);
    expect(v.rows.find((r) => r.name === "rss.peak")!.targetMet).toBe(false);
  });
});

describe("stats", () => {
  test("median of odd and even counts", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  test("ratioResult pairs repeats and inverts for lower-is-better units", () => {
    const r = ratioResult("x", "Gbit/s", [10, 12], { name: "direct", runs: [20, 20] });
    expect(r.runs).toEqual([0.5, 0.6]);
    expect(r.ratio).toBeCloseTo(0.55);
    expect(r.reference).toEqual({ name: "direct", value: 20 });
    const ns = ratioResult("y", "ns/op", [10], { name: "baseline", runs: [5] }, { higherIsBetter: false });
    expect(ns.ratio).toBe(0.5);
  });

  test("summarize keeps the runs and takes the median", () => {
    expect(summarize("c", "ms", [70, 50, 60])).toEqual({ name: "c", unit: "ms", value: 60, runs: [70, 50, 60] });
  });

  test("combineProcesses gates the median over processes and keeps each process's number as a run", () => {
    const pick = (ns: number, ref: number): Result => ({ name: "lb.x", unit: "ns/op", value: ns, reference: { name: "ref", value: ref }, ratio: ref / ns });
    const [r] = combineProcesses([[pick(20, 2)], [pick(10, 2)], [pick(40, 2)]]);
    expect(r!.ratio).toBe(0.1);
    expect(r!.value).toBe(20);
    expect(r!.reference).toEqual({ name: "ref", value: 2 });
    expect(r!.runs).toEqual([0.1, 0.2, 0.05]);
    const [c] = combineProcesses([[compile(70)], [compile(50)], [compile(60)]]);
    expect(c!.value).toBe(60);
    expect(c!.runs).toEqual([70, 50, 60]);
  });

  test("combineProcesses keeps an error from any process, so a crash is never averaged away", () => {
    const crashed: Result = { name: "compile.10k_services", unit: "", value: null, error: "exit 1" };
    const [c] = combineProcesses([[compile(70)], [crashed]]);
    expect(c!.error).toBe("exit 1");
  });
});

describe("renderTable", () => {
  const floors = parseFloors(floorsText);

  test("shows value, reference, ratio, floor, target and status per row", () => {
    const text = renderTable(evaluate([bulk(0.5), compile(60), rss(45)], floors));
    const line = text.split("\n").find((l) => l.startsWith("tcp.bulk.proxy"))!;
    expect(line).toContain("10.0 Gbit/s");
    expect(line).toContain("20.0 Gbit/s (direct)");
    expect(line).toContain("0.500x");
    expect(line).toContain(">= 0.400x");
    expect(line).toContain(">= 0.750x NOT met");
    expect(line).toMatch(/PASS$/);
    expect(text).toContain("GATE PASS");
  });

  test("prints a loud line for NOT MEASURED and for failures", () => {
    const text = renderTable(
      evaluate([{ name: "tcp.bulk.proxy", unit: "Gbit/s", value: null, notMeasured: "src/hotpath not landed" }, compile(150)], floors),
    );
    expect(text).toContain("!!! NOT MEASURED: tcp.bulk.proxy: src/hotpath not landed");
    expect(text).toContain("!!! FAIL: compile.10k_services: 150 is not <= 100");
    expect(text).toContain("!!! MISSING: rss.peak");
    expect(text).toContain("GATE FAIL");
  });
});

describe("results of benchmarks other modules own", () => {
  test("an array of result-like objects is taken as is, prefixed once", () => {
    const out = normalizeExternal("dns", [
      { name: "dns.cluster.qps_ratio", unit: "q/s", value: 90000, ratio: 1.1, reference: { name: "dnsmasq", value: 81818 }, runs: [1.1, 1.2] },
      { name: "warm", value: 3 },
    ]);
    expect(out[0]).toEqual({ name: "dns.cluster.qps_ratio", unit: "q/s", value: 90000, ratio: 1.1, reference: { name: "dnsmasq", value: 81818 }, runs: [1.1, 1.2] });
    expect(out[1]!.name).toBe("dns.warm");
  });

  test("a flat object becomes one result per number; ratio keys are ratios; targets are left out", () => {
    const out = normalizeExternal("kube", { bench: "kube-scale", syncMs: 827, rssAfterSyncMiB: 98.5, change: { p99: 1.9 }, qps_ratio: 0.9, targets: { syncMs: 5000 }, pass: true });
    expect(out.map((r) => r.name)).toEqual(["kube.syncMs", "kube.rssAfterSyncMiB", "kube.change.p99", "kube.qps_ratio"]);
    expect(out[0]).toMatchObject({ unit: "ms", value: 827 });
    expect(out[1]).toMatchObject({ unit: "MiB" });
    expect(out[3]).toMatchObject({ value: 0.9, ratio: 0.9 });
  });

  test("lastJson finds the JSON after log lines, single-line or pretty-printed", () => {
    expect(lastJson('starting\n[{"name":"a","value":1}]\n')).toEqual([{ name: "a", value: 1 }]);
    expect(lastJson('log line\n{\n  "syncMs": 5\n}\n')).toEqual({ syncMs: 5 });
    expect(lastJson("no json here")).toBeUndefined();
  });
});

describe("retryTargets", () => {
  const floors = parseFloors(floorsText);

  test("only groups owning a FAIL or ERROR row are re-run, with the reason", () => {
    const byGroup = new Map<string, Result[]>([
      ["macro", [bulk(0.3), rss(45)]],
      ["micro/compile.bench.ts", [compile(60)]],
      ["dns.bench.ts", [{ name: "dns.bench", unit: "", value: null, notMeasured: "not there" }]],
    ]);
    const all = [...byGroup.values()].flat();
    const targets = retryTargets(evaluate(all, floors), byGroup);
    expect(targets).toEqual([{ group: "macro", why: "tcp.bulk.proxy FAIL 0.300" }]);
  });

  test("a crashed group is re-run; a passing run re-runs nothing", () => {
    const crashed = new Map<string, Result[]>([["micro/compile.bench.ts", [{ name: "compile.10k_services", unit: "", value: null, error: "exit 1: boom" }]]]);
    expect(retryTargets(evaluate([...crashed.values()].flat(), floors), crashed)[0]!.why).toContain("ERROR exit 1: boom");
    const fine = new Map<string, Result[]>([["macro", [bulk(0.5), rss(45), compile(60)]]]);
    expect(retryTargets(evaluate([...fine.values()].flat(), floors), fine)).toEqual([]);
  });
});
