// The Containerfile read as a builder would (test/support/containerfile.ts; no container engine
// runs here): two stages that reference each other correctly, every variable declared where it is
// used, Node only in the install stage, production dependencies only, the version label equal to
// package.json's, and the entry point running what the DaemonSet asks for.

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ContainerfileError, parseContainerfile, stageArgs, unquote, variablesIn } from "../support/containerfile.ts";

const ROOT = resolve(import.meta.dir, "../..");
const text = readFileSync(join(ROOT, "Containerfile"), "utf8");
const file = parseContainerfile(text);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const stage = (name: string) => file.stages.find((s) => s.name === name)!;
const all = (name: string, keyword: string) => stage(name).instructions.filter((i) => i.keyword === keyword);

describe("Containerfile", () => {
  test("parses into an install stage and a runtime stage, both from declared image arguments", () => {
    expect(file.stages.map((s) => s.name)).toEqual(["install", "runtime"]);
    for (const s of file.stages) {
      const [ref] = variablesIn(s.image);
      expect(ref).toBeDefined();
      expect(file.globalArgs.has(ref!)).toBe(true);
    }
    expect(file.globalArgs.get("NODE_IMAGE")).toMatch(/^docker\.io\/library\/node:\d+-bookworm-slim$/);
    expect(file.globalArgs.get("RUNTIME_IMAGE")).toBe("docker.io/library/debian:bookworm-slim");
  });

  test("Node is the current LTS line (26 since 2026-10-28) and only in the install stage", () => {
    expect(file.globalArgs.get("NODE_IMAGE")).toContain("node:26-");
    const runtime = stage("runtime").instructions.map((i) => i.args).join("\n");
    expect(runtime).not.toMatch(/\bnpm\b|\bnode\b(?!_modules)/);
  });

  test("every variable outside RUN is an ARG of its stage; RUN sees the stage's ARGs", () => {
    for (const s of file.stages) {
      const declared = stageArgs(s);
      for (const ins of s.instructions) {
        if (ins.keyword === "RUN" || ins.keyword === "ARG") continue;
        for (const v of variablesIn(ins.args)) expect(declared.has(v) ? v : `${v} undeclared in ${s.name} (line ${ins.line})`).toBe(v);
      }
    }
    expect(all("install", "RUN")[0]!.args).toContain("$BUN_BUILD");
    expect(stageArgs(stage("install")).get("BUN_BUILD")).toBe("default");
  });

  test("the runtime copies node_modules from the install stage, and our sources from the context", () => {
    const copies = all("runtime", "COPY").map((c) => c.args);
    expect(copies).toContain("--from=install /opt/edgemesh/node_modules ./node_modules");
    for (const c of copies.filter((c) => !c.startsWith("--from"))) {
      const [src] = c.split(" ");
      expect(existsSync(join(ROOT, src!))).toBe(true);
    }
    for (const c of all("install", "COPY").flatMap((c) => c.args.split(" ").slice(0, -1))) expect(existsSync(join(ROOT, c))).toBe(true);
  });

  test("production dependencies only, checked against the lock, Bun proven to start", () => {
    const run = all("install", "RUN")[0]!.args;
    expect(run).toMatch(/^npm install --omit=dev /);
    expect(run).toContain("scripts/verify-install.ts --omit=dev");
    expect(run.trim().endsWith("node_modules/.bin/bun --version")).toBe(true);
  });

  test("OCI labels carry the package version by default and the revision build argument", () => {
    const args = stageArgs(stage("runtime"));
    expect(args.get("VERSION")).toBe(pkg.version);
    const labels = Object.fromEntries(
      [...all("runtime", "LABEL")[0]!.args.matchAll(/(\S+?)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, unquote(m[2]!)]),
    );
    expect(labels["org.opencontainers.image.version"]).toBe("${VERSION}");
    expect(labels["org.opencontainers.image.revision"]).toBe("${REVISION}");
    expect(labels["org.opencontainers.image.licenses"]).toBe(pkg.license);
    const env = all("runtime", "ENV").map((e) => e.args).join(" ");
    expect(env).toContain("EDGEMESH_REVISION=${REVISION}");
  });

  test("the entry point is bin/edgemesh, and the default command is what the DaemonSet runs", () => {
    expect(JSON.parse(all("runtime", "ENTRYPOINT")[0]!.args)).toEqual(["/opt/edgemesh/bin/edgemesh"]);
    const daemonSet = readFileSync(join(ROOT, "deploy/base/daemonset.yaml"), "utf8");
    const cmd = JSON.parse(all("runtime", "CMD")[0]!.args) as string[];
    expect(daemonSet).toContain(`args: ${JSON.stringify(cmd).replaceAll(",", ", ")}`);
  });

  test("the install stage bundles the CLI after the dependencies; the runtime runs that bundle", () => {
    const runs = all("install", "RUN").map((r) => r.args);
    expect(runs).toHaveLength(2);
    expect(runs[1]).toBe("node_modules/.bin/bun scripts/build.ts");
    // What the build reads is in the stage before it runs.
    const ins = stage("install").instructions;
    const buildAt = ins.findIndex((i) => i.args === runs[1]);
    const copied = ins.slice(0, buildAt).filter((i) => i.keyword === "COPY").map((i) => i.args.split(" ")[0]);
    for (const need of ["scripts/build.ts", "src", "examples"]) expect(copied).toContain(need);
    expect(all("runtime", "COPY").map((c) => c.args)).toContain("--from=install /opt/edgemesh/dist ./dist");
    expect(all("runtime", "ENV").map((e) => e.args).join(" ")).toMatch(/\bEDGEMESH_BUNDLE=1\b/);
    expect(readFileSync(join(ROOT, "bin/edgemesh"), "utf8")).toContain('bundle="$here/../dist/index.js"');
  });

  test("the reader refuses what a builder would", () => {
    expect(() => parseContainerfile("RUN true\n")).toThrow(ContainerfileError);
    expect(() => parseContainerfile("FROM a AS x\nFROM b AS x\n")).toThrow("stage name x used twice");
    expect(() => parseContainerfile("FROM a\nRUNN true\n")).toThrow('unknown instruction "RUNN"');
    expect(() => parseContainerfile("FROM a\nRUN a \\")).toThrow("ends inside a continued instruction");
    expect(parseContainerfile("FROM a\nRUN one \\\n# note\n  two\n").stages[0]!.instructions[0]!.args).toBe("one two");
  });
});
