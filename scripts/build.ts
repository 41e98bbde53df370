#!/usr/bin/env bun
// The production build: the whole CLI bundled (Bun.build, target bun, ES modules, code splitting)
// into dist/, which bin/edgemesh runs when it is there and not older than src/ (the image builds it,
// see Containerfile). Why: an agent loaded from ~900 separate modules (our ~200 and libp2p's ~600)
// keeps a module record, an unlinked code block and the source text of each; one bundle is ~10 MiB
// less RSS at idle with the tunnel on (issue 13; bench/README "Memory with the tunnel on").
//
//   bun scripts/build.ts [--outdir dist] [--no-minify] [--quiet]
//
// Modes a node may not use stay in their own chunks, loaded by the dynamic import() that loads them
// from source today (dev mode, gateway, Edge CNI, SOCKS5, the tunnel, the Kubernetes client, the
// validate and status commands). What the bundle must see differently from the source tree, done
// here and checked (a pattern that no longer matches fails the build, it never ships half done):
//
// - import.meta in our own modules: the bundled code runs from dist/, so `import.meta.dir` and
//   `new URL("./file", import.meta.url)` are pointed back at the source folder they were written in
//   (package.json, examples/manifests, C sources a module compiles with bun:ffi's cc), except:
// - workers: `new URL("./x.ts", import.meta.url)` naming a TypeScript file is a Worker entry; each
//   is built as an entry point of its own (dist/<path-under-src-with-dashes>.js, sharing chunks)
//   and the URL points there.
// - Noise without WebAssembly (src/tunnel/no-wasm.ts's build plugin): as-sha256 is replaced by
//   node:crypto's SHA-256 and as-chacha20poly1305 by a module that only loads the real one (from
//   node_modules, at run time) when no native AEAD is bound, as the runtime plugin does from source.
// - deep imports into a bundled package (`import(new URL("./server/index.js",
//   import.meta.resolve("@libp2p/circuit-relay-v2")).href)` in relay-backpressure.ts) must reach the
//   bundled copy of that module, or the patch would land on a second copy nothing uses.
// - external, loaded from node_modules at run time: @chainsafe/libp2p-quic (its napi loader finds a
//   native .node next to itself; quic-backpressure.ts patches that same copy) and
//   @kubernetes/client-node (Manual mode only; CommonJS with optional requires).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import type { BunPlugin } from "bun";
import { noiseWithoutWasmBuildPlugin } from "../src/tunnel/no-wasm.ts";

export const ROOT = resolve(import.meta.dir, "..");
export const ENTRY = join(ROOT, "src/main/index.ts");
/** The file bin/edgemesh runs (in outdir). */
export const BUNDLE_NAME = "index.js";
const EXTERNAL = ["@chainsafe/libp2p-quic", "@kubernetes/client-node"];

export interface BuildResult {
  outdir: string;
  entry: string;
  files: { path: string; bytes: number }[];
  workers: string[];
  ms: number;
}

/** `new URL(<first>, import.meta.url)` in a source file (workers, C sources, data); the first
 * argument may choose between literals (`native ? "./native/worker.ts" : "./worker.ts"`). */
const URL_OF_SIBLING = /new URL\(([^()]*?),\s*import\.meta\.url\s*\)/g;
/** A relative path literal inside that first argument. */
const RELATIVE_LITERAL = /(["'])(\.{1,2}\/[^"']+)\1/g;

/** The bundle's file for a worker source: its path under src/ with dashes (unique). */
export function workerOutName(worker: string): string {
  return `${relative(join(ROOT, "src"), worker).replace(/\.ts$/, "").split(sep).join("-")}.js`;
}
/** `import(new URL("./deep.js", entry).href)` next to `const entry = import.meta.resolve("pkg")`. */
const DEEP_IMPORT = /import\(\s*new URL\(\s*(["'])(\.\/[^"']+)\1\s*,\s*(\w+)\s*\)\.href\s*\)/g;

function listTs(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) listTs(p, out);
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

/** Worker entry points: the TypeScript files that our modules name with new URL(..., import.meta.url). */
export function findWorkers(srcDir = join(ROOT, "src")): string[] {
  const workers = new Set<string>();
  for (const file of listTs(srcDir)) {
    for (const m of readFileSync(file, "utf8").matchAll(URL_OF_SIBLING)) {
      for (const lit of m[1]!.matchAll(RELATIVE_LITERAL)) if (lit[2]!.endsWith(".ts")) workers.add(resolve(dirname(file), lit[2]!));
    }
  }
  for (const w of workers) if (!existsSync(w)) throw new Error(`build: a module names the worker ${relative(ROOT, w)}, which does not exist`);
  return [...workers].sort();
}

/** Rewrites what our own modules locate relative to themselves (see the header). */
function ownModulesPlugin(outdir: string, workers: Set<string>): BunPlugin {
  const srcDir = join(ROOT, "src") + sep;
  const examplesDir = join(ROOT, "examples") + sep;
  return {
    name: "edgemesh-own-modules",
    setup(build) {
      build.onResolve({ filter: /^edgemesh-deep:/ }, (args) => ({ path: args.path.slice("edgemesh-deep:".length) }));
      build.onLoad({ filter: /\.ts$/ }, (args) => {
        const file = args.path;
        if (!file.startsWith(srcDir) && !file.startsWith(examplesDir)) return undefined;
        let text = readFileSync(file, "utf8");
        if (!text.includes("import.meta")) return { loader: "ts", contents: text };
        const fromOut = relative(outdir, dirname(file)).split(sep).join("/");
        text = text.replace(URL_OF_SIBLING, (_all, first: string) => {
          const rewritten = first.replace(RELATIVE_LITERAL, (_lit, _q, rel: string) => {
            const target = resolve(dirname(file), rel);
            if (workers.has(target)) return JSON.stringify(`./${workerOutName(target)}`);
            if (!existsSync(target)) throw new Error(`build: ${relative(ROOT, file)} names ${rel}, which does not exist`);
            return JSON.stringify(`${fromOut}/${rel}`);
          });
          return `new URL(${rewritten}, import.meta.url)`;
        });
        text = text.replace(DEEP_IMPORT, (all, _q, rel: string, variable: string) => {
          const pkg = text.match(new RegExp(`\\b${variable}\\s*=\\s*import\\.meta\\.resolve\\((["'])([^"']+)\\1\\)`))?.[2];
          if (!pkg) throw new Error(`build: ${relative(ROOT, file)}: ${all} without ${variable} = import.meta.resolve("...")`);
          // An external package is loaded from node_modules at run time: its deep modules too.
          if (EXTERNAL.includes(pkg)) return all;
          const target = resolve(dirname(Bun.resolveSync(pkg, dirname(file))), rel);
          if (!existsSync(target)) throw new Error(`build: ${relative(ROOT, file)} imports ${rel} of ${pkg}, not at ${target}`);
          return `import(${JSON.stringify(`edgemesh-deep:${target}`)})`;
        });
        text = text.replace(/\bimport\.meta\.(dir|dirname)\b/g, () => `(import.meta.dir + ${JSON.stringify(`/${fromOut}`)})`);
        return { loader: "ts", contents: text };
      });
    },
  };
}

export async function buildAgent(o: { outdir?: string; minify?: boolean } = {}): Promise<BuildResult> {
  const t0 = performance.now();
  const outdir = resolve(o.outdir ?? join(ROOT, "dist"));
  // The bundle finds node_modules (the externals) by walking up from itself, and its rewritten
  // paths lead back into src/: it must live inside this tree.
  if (relative(ROOT, outdir).startsWith("..") || outdir === ROOT) throw new Error(`build: --outdir must be a folder inside ${ROOT}`);
  const workers = findWorkers();
  rmSync(outdir, { recursive: true, force: true });
  // One small entry file per worker, named as its output (two workers may share a file name).
  const stubs = join(ROOT, ".state", `build-entries-${process.pid}`);
  mkdirSync(stubs, { recursive: true });
  const workerEntries = workers.map((w) => {
    const stub = join(stubs, workerOutName(w).replace(/\.js$/, ".ts"));
    writeFileSync(stub, `import ${JSON.stringify(w)};\n`);
    return stub;
  });
  const result = await Bun.build({
    entrypoints: [ENTRY, ...workerEntries],
    outdir,
    target: "bun",
    format: "esm",
    splitting: true,
    minify: o.minify ?? true,
    sourcemap: "none",
    external: EXTERNAL,
    naming: { entry: "[name].[ext]", chunk: "chunk-[hash].[ext]", asset: "asset-[name]-[hash].[ext]" },
    plugins: [noiseWithoutWasmBuildPlugin(), ownModulesPlugin(outdir, new Set(workers))],
    throw: false,
  }).finally(() => rmSync(stubs, { recursive: true, force: true }));
  if (!result.success) throw new Error(`build failed:\n${result.logs.map((l) => String(l)).join("\n")}`);
  const files = result.outputs.map((f) => ({ path: relative(outdir, f.path), bytes: f.size }));
  return { outdir, entry: join(outdir, BUNDLE_NAME), files, workers: workers.map((w) => relative(ROOT, w)), ms: Math.round(performance.now() - t0) };
}

if (import.meta.main) {
  const { values: a } = parseArgs({ options: { outdir: { type: "string" }, "no-minify": { type: "boolean", default: false }, quiet: { type: "boolean", default: false } } });
  const r = await buildAgent({ outdir: a.outdir, minify: !a["no-minify"] });
  if (!a.quiet) {
    const total = r.files.reduce((s, f) => s + f.bytes, 0);
    console.log(`build: ${relative(process.cwd(), r.entry) || r.entry}, ${r.files.length} files, ${(total / 1024).toFixed(0)} KiB, workers ${r.workers.join(", ")}, ${r.ms} ms`);
  }
}
