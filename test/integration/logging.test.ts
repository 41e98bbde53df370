// Logs as an operator gets them from the real process: --log-format json gives one JSON object per
// line on stderr (also for a fatal start error), --log-level filters, and the config file's
// commonConfig.logLevel/logFormat apply when no flag is given.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnWatched } from "../support/process.ts";

const MAIN = resolve(import.meta.dir, "../../src/main/index.ts");
const dir = mkdtempSync(join(tmpdir(), "edgemesh-logs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string; stdout: string }> {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, EDGEMESH_LOG_LEVEL: "", EDGEMESH_LOG_FORMAT: "", ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr, stdout };
}

describe("fatal start errors go through the logger", () => {
  test("json: one object naming the cause, exit 1", async () => {
    const missing = join(dir, "missing.yaml");
    const r = await run(["agent", "--config", missing, "--log-format", "json"]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0]!);
    expect(o).toMatchObject({ level: "error", component: "edgemesh" });
    expect(o.msg).toContain(`config ${missing}: cannot read the file`);
  });

  test("text: one line with time, level and the cause naming the key", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "commonConfig:\n  logLevel: loud\n");
    const r = await run(["dev", "--config", bad, "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z ERROR \[edgemesh\] .*commonConfig\.logLevel.*loud/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("a running dev mode", () => {
  test("--log-format json --log-level debug: every stderr line is a JSON object, debug included", async () => {
    const dev = spawnWatched([process.execPath, MAIN, "dev", "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"], { env: { EDGEMESH_LOG_LEVEL: "", EDGEMESH_LOG_FORMAT: "" } });
    try {
      await dev.waitFor(/"level":"debug"/, 15_000);
    } finally {
      await dev.kill();
    }
    const logLines = dev.output().split("\n").filter((l) => l.startsWith("{"));
    expect(logLines.length).toBeGreaterThan(1);
    for (const l of logLines) {
      const o = JSON.parse(l);
      expect(typeof o.ts).toBe("string");
      expect(["debug", "info", "warn", "error"]).toContain(o.level);
      expect(typeof o.msg).toBe("string");
    }
    // What is not JSON is dev mode's own report on stdout (where things listen), never a log line.
    for (const l of dev.output().split("\n").filter((l) => l !== "" && !l.startsWith("{"))) {
      expect(l).not.toMatch(/^\d{4}-\d\d-\d\dT.* (DEBUG|INFO|WARN|ERROR) /);
    }
  });

  test("commonConfig.logLevel: warn from the file hides info and debug", async () => {
    const cfg = join(dir, "warn.yaml");
    writeFileSync(cfg, "commonConfig:\n  logLevel: warn\n  logFormat: json\n");
    const dev = spawnWatched([process.execPath, MAIN, "dev", "--config", cfg, "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"], { env: { EDGEMESH_LOG_LEVEL: "", EDGEMESH_LOG_FORMAT: "" } });
    try {
      await dev.waitFor(/admin http:\/\//, 15_000);
      await Bun.sleep(500);
    } finally {
      await dev.kill();
    }
    const logs = dev.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    for (const o of logs) expect(["warn", "error"]).toContain(o.level);
    expect(dev.output()).not.toMatch(/"level":"(info|debug)"/);
  });
});
