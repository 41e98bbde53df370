// package.json and package-lock.json as the image build and npm read them: the lock's root mirrors
// package.json; what src/ and bin/ import at run time is a production dependency and every
// production dependency is used; dev-only packages (mitata, typescript, types) are devDependencies
// and marked dev in the lock; the engines range claims only Node versions on which no locked
// package warns; scripts/verify-install.ts compares an install with the lock.

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { compareInstall, type Lockfile } from "../../scripts/verify-install.ts";

const ROOT = resolve(import.meta.dir, "../..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as Lockfile & { packages: Record<string, any> };

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Packages src/ loads at run time (static and dynamic imports; `import type` is erased). */
function runtimeImports(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const file of files(join(ROOT, "src"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\s+(type\s+)?[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
      if (m[2]) continue; // import type
      const spec = m[3] ?? m[4]!;
      if (spec.startsWith(".") || spec.startsWith("node:") || spec.startsWith("bun:") || spec === "bun") continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
      out.set(name, [...(out.get(name) ?? []), file.slice(ROOT.length + 1)]);
    }
  }
  return out;
}

describe("package.json and the lock", () => {
  test("the lock's root entry is package.json's dependencies, devDependencies and engines", () => {
    const root = lock.packages[""];
    expect(root.dependencies).toEqual(pkg.dependencies);
    expect(root.devDependencies).toEqual(pkg.devDependencies);
    expect(root.engines).toEqual(pkg.engines);
    expect(root.version).toBe(pkg.version);
  });

  test("every package src/ loads is a production dependency, and every production dependency is loaded", () => {
    const imports = runtimeImports();
    for (const [name, where] of imports) expect(pkg.dependencies[name] ? name : `${name} (imported by ${where[0]}) is not in dependencies`).toBe(name);
    // bun is the runtime itself: bin/edgemesh executes node_modules/.bin/bun.
    const unused = Object.keys(pkg.dependencies).filter((d) => d !== "bun" && !imports.has(d));
    expect(unused).toEqual([]);
    expect(readFileSync(join(ROOT, "bin/edgemesh"), "utf8")).toContain("node_modules/.bin/bun");
  });

  test("dev-only packages stay out of the production set", () => {
    for (const dev of ["mitata", "typescript", "@types/bun"]) {
      expect(pkg.dependencies[dev]).toBeUndefined();
      expect(pkg.devDependencies[dev]).toBeDefined();
      expect(lock.packages[`node_modules/${dev}`]?.dev).toBe(true);
    }
    // Each version pinned exactly, so the lock and package.json cannot drift apart silently.
    for (const v of [...Object.values(pkg.dependencies), ...Object.values(pkg.devDependencies)]) expect(v as string).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("on every Node version the engines field claims, no locked package warns (and the claim is tight)", () => {
    const ranges = [...new Set(Object.entries(lock.packages).filter(([p]) => p !== "").map(([, e]) => e.engines?.node).filter((r): r is string => typeof r === "string"))];
    expect(ranges.length).toBeGreaterThan(5);
    const claimed = ["22.19.0", "22.30.1", "24.0.0", "24.11.0", "26.0.0", "26.4.0", "27.0.0", "30.1.0"];
    for (const v of claimed) {
      expect(Bun.semver.satisfies(v, pkg.engines.node)).toBe(true);
      for (const r of ranges) expect(Bun.semver.satisfies(v, r) ? "ok" : `node ${v} fails ${r}`).toBe("ok");
    }
    // Just outside the claim, some locked package does warn: the range is not narrower than needed.
    for (const v of ["22.18.0", "23.11.0", "25.2.0", "20.20.2"]) {
      expect(Bun.semver.satisfies(v, pkg.engines.node)).toBe(false);
      expect(ranges.some((r) => !Bun.semver.satisfies(v, r))).toBe(true);
    }
  });
});

describe("scripts/verify-install.ts", () => {
  const fixture: Lockfile = {
    packages: {
      "": {},
      "node_modules/a": { version: "1.0.0" },
      "node_modules/a/node_modules/b": { version: "2.0.0" },
      "node_modules/q": { version: "3.0.0", optionalDependencies: { "q-linux-x64": "3.0.0", "q-linux-arm64": "3.0.0" } },
      "node_modules/q-linux-x64": { version: "3.0.0", optional: true, os: ["linux"], cpu: ["x64"] },
      "node_modules/mitata": { version: "1.0.34", dev: true },
    },
  };
  const host = { platform: "linux", arch: "x64", libc: "glibc" };
  const base = [["node_modules/a", "1.0.0"], ["node_modules/a/node_modules/b", "2.0.0"], ["node_modules/q", "3.0.0"]] as const;

  test("an install equal to the lock's production set passes; the dev set is required only without --omit=dev", () => {
    const prod = new Map<string, string>([...base, ["node_modules/q-linux-x64", "3.0.0"]]);
    expect(compareInstall(fixture, prod, { omitDev: true, ...host })).toEqual([]);
    expect(compareInstall(fixture, prod, { omitDev: false, ...host })).toEqual(["missing: node_modules/mitata@1.0.34 (in the lock)"]);
  });

  test("a wrong version, a missing package, a dev package or an unlocked one fails, each named", () => {
    const bad = new Map<string, string>([["node_modules/a", "1.0.1"], ["node_modules/q", "3.0.0"], ["node_modules/mitata", "1.0.34"], ["node_modules/left-pad", "1.3.0"]]);
    expect(compareInstall(fixture, bad, { omitDev: true, ...host }).sort()).toEqual([
      "dev package installed: node_modules/mitata@1.0.34",
      "missing: node_modules/a/node_modules/b@2.0.0 (in the lock)",
      "missing: node_modules/q-linux-x64@3.0.0 (in the lock)",
      "not in the lock: node_modules/left-pad@1.3.0",
      "wrong version: node_modules/a is 1.0.1, the lock says 1.0.0",
    ]);
  });

  test("a platform build the lock could not name is accepted at the version its parent pins, not another", () => {
    const arm = { platform: "linux", arch: "arm64", libc: "glibc" };
    expect(compareInstall(fixture, new Map<string, string>([...base, ["node_modules/q-linux-arm64", "3.0.0"]]), { omitDev: true, ...arm })).toEqual([]);
    expect(compareInstall(fixture, new Map<string, string>([...base, ["node_modules/q-linux-arm64", "3.0.1"]]), { omitDev: true, ...arm })).toEqual(["not in the lock: node_modules/q-linux-arm64@3.0.1"]);
  });
});
