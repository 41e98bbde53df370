// The floor the mandated stack sets (issue 13): two js-libp2p nodes on Bun with the modules and
// options our tunnel uses (libp2p-floor-stack.ts) and nothing of ours on top, in mem-bench's bed
// (two network namespaces on one LAN), built as a minified bundle as scripts/build.ts builds the
// agent, with bin/agent.env's runtime options. n1 dials n2, opens a stream, echoes once; then
//   idle        10 s later: each node's VmRSS, RssAnon, RssFile, and RSS by kind of mapping
//   after_load  1 s after a bulk over one stream (--seconds) then --streams concurrent streams of
//               small request/response (--seconds), as mem-bench's iperf3 then wrk -c64
//   peak        VmHWM after the load
// plus, each idle --idle seconds in n1: `bare` (the bundle's entry, loads no libp2p module) and
// `imported` (the whole stack's modules loaded, nothing created or started).
//
//   bun bench/macro/libp2p-floor.ts [--seconds 3] [--idle 10] [--streams 64] [--native] [--bare]
//
// --native: the nodes' Noise AEAD and pnet cipher are libsodium / OpenSSL through bun:ffi, as the
// agent's (src/tunnel/noise.ts), so the load moves as many bytes as mem-bench's; without it @noble's
// pure JS ciphers, the stack as shipped (~20x slower bulk). --bare: without bin/agent.env.
//
// Prints one JSON line of rows (MiB, the larger node; not gated) and the detail on stderr. Needs
// root; every process and namespace it creates is removed at exit, also on failure or SIGINT.

import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../../scripts/build.ts";
import { noiseWithoutWasmBuildPlugin } from "../../src/tunnel/no-wasm.ts";
import { BUN } from "../../test/e2e/harness.ts";
import { createTestbed, oneLan, type Testbed } from "../../test/support/netns.ts";
import type { Watched } from "../../test/support/process.ts";
import { agentLauncherEnv, memOf, smapsOf, type Mem } from "./proc-mem.ts";

const { values: a } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    idle: { type: "string", default: "10" },
    streams: { type: "string", default: "64" },
    bare: { type: "boolean", default: false },
    native: { type: "boolean", default: false },
  },
});
const seconds = Math.min(30, Math.max(1, Number(a.seconds)));
const idleMs = Math.min(60, Math.max(1, Number(a.idle))) * 1000;
const env: Record<string, string> = { ...(a.bare ? {} : agentLauncherEnv()), FLOOR_SECONDS: String(seconds), FLOOR_STREAMS: a.streams!, FLOOR_NATIVE: a.native ? "1" : "0" };
const PORT = 20006;

const outdir = join(ROOT, ".state/libp2p-floor-bundle");
const built = await Bun.build({
  entrypoints: [join(import.meta.dir, "libp2p-floor-node.ts")],
  outdir,
  target: "bun",
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: "none",
  naming: { entry: "[name].[ext]", chunk: "chunk-[hash].[ext]" },
  plugins: [noiseWithoutWasmBuildPlugin({ nativeCheck: false })],
  throw: false,
});
if (!built.success) throw new Error(`build failed:\n${built.logs.map(String).join("\n")}`);
const entry = join(outdir, "libp2p-floor-node.js");

let bed: Testbed | undefined;
const onSignal = () => void (bed?.destroy() ?? Promise.resolve()).finally(() => process.exit(130));
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

const sample = (procs: Watched[]) => procs.map((p) => memOf(p.proc.pid));
const smaps = (procs: Watched[]) => procs.map((p) => smapsOf(p.proc.pid));

try {
  bed = await createTestbed(oneLan(2));
  const n1 = bed.node("n1");
  const n2 = bed.node("n2");
  const spawn = (node: typeof n1, args: string[]) => node.spawn([BUN, entry, ...args], { env });

  // The two idle references, one after the other, alone on the machine.
  const still: Record<string, { mem: Mem; smaps: Record<string, number> }> = {};
  for (const mode of ["bare", "imported"]) {
    const p = spawn(n1, [mode]);
    await p.waitFor(/^ready$/m, 20_000);
    await Bun.sleep(idleMs);
    still[mode] = { mem: memOf(p.proc.pid), smaps: smapsOf(p.proc.pid) };
    await p.kill("SIGTERM");
  }

  const listener = spawn(n2, ["listen", n2.ip, String(PORT)]);
  const addr = (await listener.waitFor(/^addr (\S+)$/m, 20_000))[1]!;
  const dialer = spawn(n1, ["dial", n1.ip, String(PORT), addr]);
  await dialer.waitFor(/^ready$/m, 20_000);
  const nodes = [dialer, listener];
  await Bun.sleep(idleMs);
  const idle = sample(nodes);
  const idleSmaps = smaps(nodes);
  dialer.proc.kill("SIGUSR2");
  const m = await dialer.waitFor(/^(loaded|load failed:) (.*)$/m, (2 * seconds + 60) * 1000);
  if (m[1] !== "loaded") throw new Error(`load failed: ${dialer.output().slice(-3000)}`);
  const loadStats = JSON.parse(m[2]!);
  await Bun.sleep(1000);
  const after = sample(nodes);
  const afterSmaps = smaps(nodes);

  const max = (pick: (x: Mem) => number, s: Mem[]) => Math.max(...s.map(pick));
  const rows = [
    { name: "floor.bare_rss_mib", value: still.bare!.mem.rss },
    { name: "floor.imported_rss_mib", value: still.imported!.mem.rss },
    { name: "floor.rss_idle_mib", value: max((x) => x.rss, idle), runs: idle.map((x) => x.rss) },
    { name: "floor.rss_after_load_mib", value: max((x) => x.rss, after), runs: after.map((x) => x.rss) },
    { name: "floor.hwm_mib", value: max((x) => x.hwm, after), runs: after.map((x) => x.hwm) },
    { name: "floor.anon_idle_mib", value: max((x) => x.anon, idle), runs: idle.map((x) => x.anon) },
    { name: "floor.anon_after_load_mib", value: max((x) => x.anon, after), runs: after.map((x) => x.anon) },
  ].map((r) => ({ ...r, unit: "MiB" }));
  const detail = {
    bare: still.bare,
    imported: still.imported,
    nodes: ["n1 (dialer)", "n2 (listener)"].map((node, i) => ({ node, idle: idle[i], idleSmaps: idleSmaps[i], afterLoad: after[i], afterLoadSmaps: afterSmaps[i] })),
    load: { ...loadStats, seconds, streams: Number(a.streams) },
    bundle: { files: built.outputs.length, kib: Math.round(built.outputs.reduce((s, f) => s + f.size, 0) / 1024) },
    env,
    loadAverage: (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).map(Number),
  };
  console.error(JSON.stringify(detail, null, 2));
  console.log(JSON.stringify(rows));
} finally {
  await bed?.destroy();
}
