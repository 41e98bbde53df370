// bin/edgemesh gives `edgemesh agent` (and `dev`) the runtime options in bin/agent.env (JSC heap
// sizing, issue 13), each only where the environment does not set it; other commands do not get them. Run
// against a copy of the launcher whose "bun" prints what it was started with.

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "edgemesh-launcher-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

mkdirSync(join(dir, "bin"));
mkdirSync(join(dir, "node_modules/.bin"), { recursive: true });
copyFileSync(join(ROOT, "bin/edgemesh"), join(dir, "bin/edgemesh"));
copyFileSync(join(ROOT, "bin/agent.env"), join(dir, "bin/agent.env"));
const fakeBun = join(dir, "node_modules/.bin/bun");
writeFileSync(fakeBun, '#!/bin/sh\necho "ram=${BUN_JSC_forceRAMSize-unset} args=$*"\n');
chmodSync(fakeBun, 0o755);

/** KEY=VALUE lines of bin/agent.env. */
const options = Object.fromEntries(
  readFileSync(join(ROOT, "bin/agent.env"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
);

function launch(args: string[], env: Record<string, string> = {}): string {
  // EDGEMESH_BUNDLE=0: the sources' entry (the fake bun ignores it); x86-64 without AVX2 says nothing.
  const r = Bun.spawnSync([join(dir, "bin/edgemesh"), ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", EDGEMESH_BUNDLE: "0", EDGEMESH_BUN_BUILD: "baseline", ...env } });
  expect(r.exitCode).toBe(0);
  return r.stdout.toString().trim();
}

describe("bin/edgemesh runtime options", () => {
  test("bin/agent.env sets JSC's RAM size for the heap's growth", () => {
    expect(Number(options.BUN_JSC_forceRAMSize)).toBeGreaterThan(0);
  });

  test("`agent` and `dev` get them; other commands do not; the environment wins", () => {
    expect(launch(["agent", "--config", "x.yaml"])).toBe(`ram=${options.BUN_JSC_forceRAMSize} args=${dir}/bin/../src/main/index.ts agent --config x.yaml`);
    expect(launch(["dev", "--manifests", "m"])).toStartWith(`ram=${options.BUN_JSC_forceRAMSize} `);
    expect(launch(["validate", "--config", "x.yaml"])).toStartWith("ram=unset ");
    expect(launch(["gateway"])).toStartWith("ram=unset ");
    expect(launch(["agent"], { BUN_JSC_forceRAMSize: "1073741824" })).toStartWith("ram=1073741824 ");
  });
});
