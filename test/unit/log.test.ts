import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/control/config/index.ts";
import { configureLogging, createLogger, createMemoryLogger, LogLimiter, loggingSettings } from "../../src/log/index.ts";
import { parseArgs } from "../../src/main/args.ts";
import { applyLogConfig } from "../../src/main/logging.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const fixed = () => new Date("2026-11-26T10:00:00.000Z");

describe("log format", () => {
  test("json: one object per line with ts, level, component, msg and the context", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "debug", component: "agent", write: (l) => lines.push(l), now: fixed });
    log.child("proxy").warn("dial failed", { service: "default/web:80/TCP", endpoint: "10.0.0.5:8080", reason: "connection refused", err: new Error("ECONNREFUSED"), n: 3 });
    log.info('quotes " and\nnewlines', { msg: "clash", nested: { a: [1, 2] }, big: 10n, none: undefined });
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).not.toContain("\n");
    expect(JSON.parse(lines[0]!)).toEqual({
      ts: "2026-11-26T10:00:00.000Z", level: "warn", component: "agent/proxy", msg: "dial failed",
      service: "default/web:80/TCP", endpoint: "10.0.0.5:8080", reason: "connection refused", err: "ECONNREFUSED", n: 3,
    });
    expect(JSON.parse(lines[1]!)).toEqual({
      ts: "2026-11-26T10:00:00.000Z", level: "info", component: "agent", msg: 'quotes " and\nnewlines',
      ctx_msg: "clash", nested: { a: [1, 2] }, big: "10", none: null,
    });
  });

  test("json: a context that cannot be serialized still gives one parseable line", () => {
    const lines: string[] = [];
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    createLogger({ format: "json", write: (l) => lines.push(l), now: fixed }).error("boom", { cyclic });
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "error", msg: "boom", ctx_error: "context not serializable" });
  });

  test("text: time, level, component, message, key=value with quoting where needed", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "text", component: "agent", write: (l) => lines.push(l), now: fixed });
    log.warn("dial failed", { service: "default/web:80/TCP", reason: "connection refused", empty: "", n: 2 });
    expect(lines).toEqual(['2026-11-26T10:00:00.000Z WARN  [agent] dial failed service=default/web:80/TCP reason="connection refused" empty="" n=2']);
  });

  test("levels filter: below the level nothing is written", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "warn", write: (l) => lines.push(l) });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(lines.map((l) => l.split(" ")[1])).toEqual(["WARN", "ERROR"]);
  });

  test("loggers without their own settings follow configureLogging, also ones made before it", () => {
    const before = loggingSettings();
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    try {
      configureLogging({ level: "error", format: "text" });
      log.warn("hidden");
      configureLogging({ level: "debug", format: "json" });
      log.child("x").debug("shown");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: "debug", component: "edgemesh/x", msg: "shown" });
    } finally {
      configureLogging(before);
    }
  });
});

describe("where level and format come from", () => {
  test("flags, then the environment, then commonConfig, then info/text", () => {
    const before = loggingSettings();
    try {
      const config = loadConfig({ text: "commonConfig:\n  logLevel: warn\n  logFormat: json\n", env: {} });
      applyLogConfig(config, {}, {});
      expect(loggingSettings()).toEqual({ level: "warn", format: "json" });
      applyLogConfig(config, {}, { EDGEMESH_LOG_LEVEL: "error" });
      expect(loggingSettings()).toEqual({ level: "error", format: "json" });
      applyLogConfig(config, { logLevel: "debug", logFormat: "text" }, { EDGEMESH_LOG_LEVEL: "error" });
      expect(loggingSettings()).toEqual({ level: "debug", format: "text" });
      applyLogConfig(loadConfig({ text: "", env: {} }), {}, {});
      expect(loggingSettings()).toEqual({ level: "info", format: "text" });
    } finally {
      configureLogging(before);
    }
  });

  test("the flags parse for agent, dev and gateway, and a bad value names the flag", () => {
    expect(parseArgs(["agent", "--config", "a.yaml", "--log-level", "debug", "--log-format=json"])).toEqual({
      cmd: "agent", config: "a.yaml", logLevel: "debug", logFormat: "json",
    });
    expect(parseArgs(["dev", "--log-format", "json"])).toMatchObject({ cmd: "dev", logFormat: "json" });
    expect(parseArgs(["gateway", "--config", "g.yaml", "--log-level", "warn"])).toMatchObject({ logLevel: "warn" });
    expect(() => parseArgs(["agent", "--config", "a.yaml", "--log-level", "verbose"])).toThrow('--log-level: expected one of debug, info, warn, error, got "verbose"');
    expect(() => parseArgs(["dev", "--log-format", "yaml"])).toThrow('--log-format: expected one of text, json, got "yaml"');
    expect(() => parseArgs(["status", "--log-level", "debug"])).toThrow('unknown flag --log-level for "status"');
  });

  test("a bad commonConfig.logLevel or logFormat is refused, naming the key", () => {
    expect(() => loadConfig({ text: "commonConfig:\n  logLevel: verbose\n", env: {} })).toThrow("commonConfig.logLevel");
    expect(() => loadConfig({ text: "commonConfig:\n  logFormat: xml\n", env: {} })).toThrow("commonConfig.logFormat");
  });
});

describe("rate-limited data-path warnings", () => {
  const clock = () => ({ t: 1_000_000, now() { return this.t; } });

  test("a flood of one failure logs once per interval and reports how many it held back", () => {
    const log = createMemoryLogger();
    const c = clock();
    const suppressedTotal = createMetrics().counter("log_suppressed_total", "x");
    const limiter = new LogLimiter({ log, clock: c, intervalMs: 10_000, suppressedTotal });
    let logged = 0;
    const event = () => {
      const n = limiter.admit("dial|default/web:80/TCP|10.0.0.5:8080", "dial failed");
      if (n < 0) return;
      logged++;
      log.warn("dial failed", { service: "default/web:80/TCP", endpoint: "10.0.0.5:8080", reason: "connection refused", ...(n > 0 ? { suppressed: n } : {}) });
    };
    for (let i = 0; i < 100_000; i++) event();
    expect(logged).toBe(1);
    expect(suppressedTotal.value).toBe(99_999);
    c.t += 10_000;
    event();
    expect(logged).toBe(2);
    expect(log.lines[1]).toContain("suppressed=99999");
    expect(log.lines).toHaveLength(2);
  });

  test("flush reports what a window held back once it ends, then forgets the key", () => {
    const log = createMemoryLogger();
    const c = clock();
    const limiter = new LogLimiter({ log, clock: c, intervalMs: 5_000 });
    limiter.admit("k", "no endpoints");
    for (let i = 0; i < 7; i++) limiter.admit("k", "no endpoints");
    limiter.flush();
    expect(log.lines).toHaveLength(0); // window still open
    c.t += 5_000;
    limiter.flush();
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toContain("no endpoints (repeats suppressed) key=k suppressed=7 seconds=5");
    expect(limiter.size).toBe(0);
    expect(limiter.admit("k", "no endpoints")).toBe(0); // a new window: logged at once
  });

  test("different keys are limited apart; key memory stays bounded and evicted counts are reported", () => {
    const log = createMemoryLogger();
    const c = clock();
    const limiter = new LogLimiter({ log, clock: c, intervalMs: 10_000, maxKeys: 100 });
    let logged = 0;
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 10_000; k++) if (limiter.admit(`endpoint-${k}`, "dial failed") >= 0) logged++;
      // the same 100 keys are flooded too
      for (let k = 0; k < 100; k++) limiter.admit(`hot-${k % 5}`, "peer unreachable");
    }
    expect(limiter.size).toBeLessThanOrEqual(100);
    expect(logged).toBe(30_000); // each admission of an evicted key is new again: logged
    c.t += 10_000;
    limiter.flush();
    const summary = log.lines.find((l) => l.includes("keys forgotten to bound memory"));
    const perKey = log.lines.filter((l) => l.includes("(repeats suppressed)"));
    // Every suppressed event is accounted for, per key or in the summary.
    const counted = perKey.reduce((a, l) => a + Number(/suppressed=(\d+)/.exec(l)![1]), 0) + Number(/suppressed=(\d+)/.exec(summary ?? "suppressed=0")![1]);
    // 300 hot events; each round the endpoint flood evicts the hot keys, so each logs once per round.
    expect(counted).toBe(3 * 100 - 3 * 5);
  });
});
