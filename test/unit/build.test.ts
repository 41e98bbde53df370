// scripts/build.ts: the bundle the image runs. Built here into a folder of its own inside the repo
// (the bundle finds node_modules by walking up): fast, every worker built and loadable from it, the
// files our modules locate relative to themselves still found, the relay patch aimed at the bundled
// copy of the relay server, and the CLI answering from it. The bundled agent carrying traffic
// through the tunnel is bench/mem-bench.ts (the gate runs it on the bundle).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildAgent, findWorkers, ROOT, workerOutName, type BuildResult } from "../../scripts/build.ts";

const outdir = join(ROOT, ".state", `build-test-${process.pid}`);
let built: BuildResult;
let code: string;

beforeAll(async () => {
  built = await buildAgent({ outdir });
  code = readdirSync(outdir).map((f) => readFileSync(join(outdir, f), "utf8")).join("\n");
}, 60_000);

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

async function run(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, built.entry, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [out, err, exit] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out, err, exit };
}

describe("the bundle (scripts/build.ts)", () => {
  test("builds in seconds, one entry plus shared and lazy chunks", () => {
    expect(built.ms).toBeLessThan(15_000);
    expect(built.files.map((f) => f.path)).toContain("index.js");
    // Modes load lazily: the entry itself is small, the rest is in chunks.
    expect(built.files.find((f) => f.path === "index.js")!.bytes).toBeLessThan(16 * 1024);
    expect(built.files.filter((f) => f.path.startsWith("chunk-")).length).toBeGreaterThan(5);
  });

  test("every worker a module starts is built beside the entry and loads from there", async () => {
    expect(built.workers).toEqual(expect.arrayContaining(["src/host/tun-watch-worker.ts", "src/hotpath/zerocopy/worker.ts"]));
    expect(findWorkers().length).toBe(built.workers.length);
    // The modules name the built files (unique names: two workers are called worker.ts), not the sources.
    for (const w of built.workers) expect(code).toContain(`"./${workerOutName(join(ROOT, w))}"`);
    expect(code).not.toMatch(/new URL\([^)]*"\.\/[^"]+\.ts"/);
    for (const w of built.workers) {
      const file = join(outdir, workerOutName(join(ROOT, w)));
      const worker = new Worker(file);
      // "open" comes before a module that fails to resolve reports its error: wait a second more.
      const outcome = await new Promise<string>((resolve) => {
        worker.addEventListener("open", () => setTimeout(() => resolve("open"), 1000));
        worker.addEventListener("error", (e) => resolve(`error: ${(e as ErrorEvent).message}`));
        setTimeout(() => resolve("timeout"), 5000);
      });
      worker.terminate();
      expect(`${w}: ${outcome}`).toBe(`${w}: open`);
    }
  });

  test("the relay patch reaches the bundled relay server; QUIC and the Kubernetes client stay external", () => {
    // relay-backpressure.ts's deep import became an import of a bundled chunk.
    expect(code).not.toContain('"./server/index.js"');
    expect(code).toMatch(/export\{[\w$]+ as CircuitRelayServer\}/);
    // External: loaded from node_modules at run time (quic-backpressure.ts patches that copy).
    expect(code).toContain('import("@chainsafe/libp2p-quic")');
    expect(code).toContain('import("@kubernetes/client-node")');
    expect(code).not.toContain("WebAssembly");
  });

  test("the CLI answers from it, reading package.json and the shipped config from the tree", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const version = await run(["--version"]);
    expect(version.exit).toBe(0);
    expect(version.out).toStartWith(`edgemesh-bun ${pkg.version} `);
    const validate = await run(["validate", "--config", join(ROOT, "deploy/base/edgemesh-agent.yaml")], { NODE_NAME: "n1" });
    expect(validate.err.trim().split("\n").filter((l) => !l.startsWith("warning:"))).toEqual([]);
    expect(validate.exit).toBe(0);
    expect(validate.out).toContain("kind: EdgeMeshAgent");
    const usage = await run(["frobnicate"]);
    expect(usage.exit).toBe(2);
  });

  test("refuses an output folder outside the repository (the bundle would not find node_modules)", async () => {
    await expect(buildAgent({ outdir: "/tmp/edgemesh-bundle-outside" })).rejects.toThrow("inside");
  });
});
