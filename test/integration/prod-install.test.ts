// The image's contents without a container engine: the Containerfile's install stage runs for real
// (its COPY lines and its RUN step, verbatim, in a temporary /opt/edgemesh), then the runtime
// stage's COPY lines lay out the image's folder. From that production-only tree the agent's code
// must load (every module under src/), the entry point must answer, and dev mode must run, with
// mitata, typescript and the type packages absent.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { parseContainerfile, stageArgs } from "../support/containerfile.ts";
import { spawnWatched } from "../support/process.ts";

const ROOT = resolve(import.meta.dir, "../..");
const file = parseContainerfile(readFileSync(join(ROOT, "Containerfile"), "utf8"));
const install = file.stages.find((s) => s.name === "install")!;
const runtime = file.stages.find((s) => s.name === "runtime")!;
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

let dir: string;
let image: string; // stands for /opt/edgemesh in the runtime stage
let installLog = "";

async function sh(script: string, cwd: string, env: Record<string, string> = {}) {
  const proc = Bun.spawn(["sh", "-ec", script], { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

/** COPY SRC... DEST relative to WORKDIR, from the build context or (with --from) another folder. */
function copy(args: string, workdir: string, from: (stage: string, path: string) => string): void {
  const words = args.split(" ");
  const stage = words[0]!.startsWith("--from=") ? words.shift()!.slice("--from=".length) : undefined;
  const dest = words.pop()!;
  for (const src of words) {
    const source = stage ? from(stage, src) : join(ROOT, src);
    const target = dest.endsWith("/") ? join(workdir, dest, src.split("/").pop()!) : join(workdir, dest);
    mkdirSync(dirname(target), { recursive: true });
    cpSync(source, target, { recursive: true, verbatimSymlinks: true });
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edgemesh-image-"));
  const workdir = join(dir, "install");
  mkdirSync(workdir);
  expect(install.instructions.find((i) => i.keyword === "WORKDIR")?.args).toBe("/opt/edgemesh");
  const args = Object.fromEntries([...stageArgs(install)].map(([k, v]) => [k, v ?? ""]));
  // COPY and RUN in their order, RUN verbatim (npm install, then the bundle's build); npm may
  // answer from its cache (the same packages, checked by integrity).
  for (const ins of install.instructions) {
    if (ins.keyword === "COPY") copy(ins.args, workdir, () => { throw new Error("no --from in the install stage"); });
    if (ins.keyword !== "RUN") continue;
    const result = await sh(ins.args, workdir, { ...args, npm_config_prefer_offline: "true" });
    installLog += result.out + result.err;
    if (result.code !== 0) throw new Error(`the install stage's RUN (line ${ins.line}) failed (exit ${result.code}):\n${installLog.slice(-3000)}`);
  }

  image = join(dir, "image");
  mkdirSync(image);
  for (const ins of runtime.instructions) {
    if (ins.keyword === "COPY") copy(ins.args, image, (stage, path) => join(dir, stage, relative("/opt/edgemesh", path)));
  }
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const entry = () => join(image, "bin/edgemesh");
/** The runtime stage's ENV values that are literals (EDGEMESH_BUNDLE=1: the entry point runs the bundle). */
const imageEnv = (): Record<string, string> =>
  Object.fromEntries(
    runtime.instructions
      .filter((i) => i.keyword === "ENV")
      .flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)])
      .filter((m) => !m[2]!.includes("$"))
      .map((m) => [m[1]!, m[2]!]),
  );

describe("the image's production tree (Containerfile stages run without an engine)", () => {
  test("the install stage checked its tree against the lock and started Bun", () => {
    expect(installLog).toMatch(/verify-install: \d+ packages match package-lock\.json \(production set\)/);
    expect(installLog).toContain(pkg.dependencies.bun);
  });

  test("no dev-only package is in the image", () => {
    // Dev-only: what the lock marks dev. (@types/dns-packet and @types/js-yaml are devDependencies
    // of ours that production packages also depend on, so they ship anyway.)
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
    const devOnly = Object.entries(lock.packages as Record<string, { dev?: boolean }>).filter(([, e]) => e.dev).map(([p]) => p);
    expect(devOnly).toContain("node_modules/mitata");
    expect(devOnly).toContain("node_modules/typescript");
    for (const path of devOnly) expect(existsSync(join(image, path)) ? `${path} is in the image` : "absent").toBe("absent");
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(image, "node_modules", dep, "package.json"))).toBe(true);
  });

  test("every module of the agent loads from it", async () => {
    const modules: string[] = [];
    const walk = (d: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        // The entry point runs main(); worker files install a message handler at the top.
        else if (p.endsWith(".ts") && !p.endsWith("worker.ts") && p !== join(image, "src/main/index.ts")) modules.push(p);
      }
    };
    walk(join(image, "src"));
    expect(modules.length).toBeGreaterThan(100);
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m);
await import("@chainsafe/libp2p-quic"); await import("@kubernetes/client-node");
console.log("loaded", ${modules.length});`;
    const r = await sh(`node_modules/.bin/bun -e '${script.replaceAll("'", "'\\''")}'`, image);
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe(`loaded ${modules.length}`);
  });

  test("the entry point answers --version and validates the shipped config", async () => {
    const version = await sh(`${entry()} --version`, image, imageEnv());
    expect(version.code).toBe(0);
    expect(version.out).toStartWith(`edgemesh-bun ${pkg.version} `);
    const validate = await sh(`${entry()} validate --config ${join(ROOT, "deploy/base/edgemesh-agent.yaml")}`, image, { ...imageEnv(), NODE_NAME: "n1" });
    expect(validate.code).toBe(0);
    expect(validate.out).toContain("kind: EdgeMeshAgent");
  });

  test("the install stage built the bundle, with the workers beside it and Noise's WebAssembly left out", () => {
    const dist = join(image, "dist");
    expect(imageEnv().EDGEMESH_BUNDLE).toBe("1");
    expect(installLog).toMatch(/build: dist\/index\.js, \d+ files/);
    for (const f of ["index.js", "hotpath-zerocopy-worker.js", "host-tun-watch-worker.js"]) expect(existsSync(join(dist, f)) ? f : `${f} missing`).toBe(f);
    const code = readdirSync(dist).map((f) => readFileSync(join(dist, f), "utf8")).join("\n");
    // The stand-in is in, the real package only behind a run-time import (no native AEAD).
    expect(code).toContain('["@chainsafe", "as-chacha20poly1305"].join("/")'.replaceAll(" ", ""));
    expect(code).not.toContain("WebAssembly.Module");
  });

  test("dev mode runs from it (the bundle): routes printed, DNS and admin on free loopback ports", async () => {
    const dev = spawnWatched([entry(), "dev", "--manifests", join(ROOT, "examples/manifests"), "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"], { cwd: image, env: imageEnv() });
    try {
      await dev.waitFor(/routes v\d+:/, 20_000);
      // bin/edgemesh exec'd Bun on the bundle (same process).
      expect(readFileSync(`/proc/${dev.proc.pid}/cmdline`, "utf8").split("\0")).toContain(`${image}/bin/../dist/index.js`);
      const admin = dev.output().match(/admin http:\/\/(127\.0\.0\.1:\d+)/)?.[1];
      expect(admin).toBeDefined();
      const routes = (await (await fetch(`http://${admin}/routes`)).json()) as { services: unknown[] };
      expect(routes.services.length).toBeGreaterThan(0);
    } finally {
      await dev.kill("SIGTERM");
    }
  }, 30_000);
});
