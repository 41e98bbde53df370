// Memory of two real agents with the tunnel on (PSK, TCP; issue 13), in the network-namespace bed:
// a client pod on n1, the test app and an iperf3 server in a pod on n2, services pointing at it,
// so every byte goes client -> n1's agent -> libp2p tunnel (pnet + Noise + yamux) -> n2's agent -> pod.
//
// Per agent, from /proc/PID/status: VmRSS, RssAnon, RssFile (+ RssShmem) and VmHWM
//   idle        10 s after the first request through the tunnel answered
//   after_load  1 s after a bulk (iperf3, --seconds) then an HTTP load (wrk -t2 -c64, --seconds)
//   peak        VmHWM after the load (the high-water mark since start)
//   settled     with --settle S: VmRSS every 5 s for S seconds after that (detail only)
// both agents' CPU seconds per GB in the bulk run (detail), and as gate rows the larger of the two agents: mem.rss_idle_mib, mem.rss_after_load_mib,
// mem.hwm_mib, mem.anon_idle_mib, mem.anon_after_load_mib (MiB, lower is better).
//
//   bun bench/mem-bench.ts [--short] [--seconds 3] [--idle 10] [--probe] [--bun-flag=--smol] [--env K=V] [--bare] [--source | --main FILE] [--settle S] [--keep-output DIR]
//
// The agents run what the image runs: the bundle (scripts/build.ts, built first into
// .state/mem-bench-bundle, about a second), so the gate measures production and a bundle that does
// not start or carry traffic fails it. --source runs src/main/index.ts instead (for a comparison),
// --main FILE another entry (another checkout's src/main/index.ts, or its bundle). With the
// runtime options bin/edgemesh gives `edgemesh agent` (bin/agent.env: JSC heap sizing), as in
// production; --bare leaves them out (an A/B, or another checkout's entry without them).
//
// --probe preloads bench/mem-probe.ts into the agents and adds, per agent and phase, JSC's heap
// after a full GC (heapSize, extraMemorySize, objectCount, top types): for finding what holds the
// memory, not for the gate (the probe itself costs a little). --bun-flag passes a flag to bun
// (e.g. --smol), --env sets a variable in the agents' environment (e.g. a
// MIMALLOC_ or BUN_JSC_ option, to try one). Needs root; touches nothing outside the namespaces it
// creates (~30 s).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildAgent, ROOT } from "../scripts/build.ts";
import { BUN, createCluster, MAIN, serviceYaml, until } from "../test/e2e/harness.ts";
import { oneLan } from "../test/support/netns.ts";
import { agentLauncherEnv, cpuSeconds, keyValue, memOf, smapsOf, type Mem } from "./macro/proc-mem.ts";
import type { Watched } from "../test/support/process.ts";

const { values: a } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    seconds: { type: "string", default: "3" },
    idle: { type: "string", default: "10" },
    probe: { type: "boolean", default: false },
    "bun-flag": { type: "string", multiple: true, default: [] },
    env: { type: "string", multiple: true, default: [] },
    bare: { type: "boolean", default: false },
    main: { type: "string" },
    source: { type: "boolean", default: false },
    settle: { type: "string", default: "0" },
    "keep-output": { type: "string" },
  },
});
const seconds = Math.min(30, Math.max(1, Number(a.seconds)));
const settleSeconds = Math.min(60, Math.max(0, Number(a.settle)));
const idleSeconds = Math.min(60, Math.max(1, Number(a.idle)));
const launcherEnv = a.bare ? {} : agentLauncherEnv();
const extraEnv: Record<string, string> = { ...launcherEnv, ...Object.fromEntries(a.env!.map((kv) => keyValue(kv, "--env"))) };
const SERVER_IP = "10.244.2.10";
const IPERF_SVC = "10.96.2.1";
const HTTP_SVC = "10.96.2.2";
const MiB = 1024 * 1024;

/** EdgeMesh's Go agent in the same bed (issue 13, 2026-12-04) and the targets, MiB. */
const EDGEMESH = { rss_idle: 55, rss_after_load: 64, hwm: "62-77", anon_idle: 12, anon_after_load: 21 };
const TARGETS = { rss_idle: 60, rss_after_load: 70, hwm: 100 };

function agentConfig(manifestDir: string, stateDir: string, psk: string): string {
  return `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
kubeAPIConfig:
  manifestDir: ${manifestDir}
commonConfig:
  bridgeDeviceName: edgemesh0
  bridgeDeviceIP: 169.254.96.16
  adminAddress: 127.0.0.1:10551
  stateDir: ${stateDir}
modules:
  edgeDNS:
    enable: true
  edgeProxy:
    enable: true
  edgeTunnel:
    enable: true
    psk:
      enable: true
      path: ${psk}
`;
}

if (a.source && a.main) throw new Error("--source and --main exclude each other");
// What the agents run: the bundle unless told otherwise.
const built = a.source || a.main ? undefined : await buildAgent({ outdir: join(ROOT, ".state/mem-bench-bundle") });
const entry = a.main ?? built?.entry ?? MAIN;

const c = await createCluster(oneLan(2));
const agents: { node: string; proc: Watched }[] = [];
try {
  const server = await c.node("n2").addPod("server", SERVER_IP);
  const client = await c.node("n1").addPod("client", "10.244.1.100");
  await c.startApp(server);
  const iperf = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER_IP, "-p", "5201"]);
  await iperf.waitFor(/Server listening/);
  c.writeManifest("iperf.yaml", serviceYaml({ name: "iperf", clusterIP: IPERF_SVC, ports: [{ name: "iperf", port: 5201, targetPort: 5201 }], endpoints: [{ ip: SERVER_IP, node: "n2" }] }));
  c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: HTTP_SVC, ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: SERVER_IP, node: "n2" }] }));

  const psk = join(c.dir, "psk");
  writeFileSync(psk, "edgemesh-mem-bench\n");
  const probeDir = join(c.dir, "probe");
  mkdirSync(probeDir);
  // The probe's collection experiment (MEM_PROBE_GC_MS) preloads it without taking probes: a probe's
// heap snapshot itself lifts VmRSS (~150 MiB at idle), so VmHWM means nothing in --probe runs.
const preload = a.probe || extraEnv.MEM_PROBE_GC_MS ? ["--preload", new URL("./mem-probe.ts", import.meta.url).pathname] : [];
  const spawnedAt = performance.now();
  for (const node of ["n1", "n2"]) {
    const stateDir = join(c.dir, `state-${node}`);
    mkdirSync(stateDir);
    const configPath = join(c.dir, `agent-${node}.yaml`);
    writeFileSync(configPath, agentConfig(c.manifests, stateDir, psk));
    const argv = [BUN, ...a["bun-flag"]!, ...preload, entry, "agent", "--config", configPath];
    const proc = c.node(node).spawn(argv, { env: { ...extraEnv, NODE_NAME: node, EDGEMESH_LOG_LEVEL: "info", MEM_PROBE_DIR: probeDir } });
    agents.push({ node, proc });
  }
  // Start-up: spawn to the "running" line (both agents start together on 2 cores).
  const startupMs: number[] = [];
  for (const ag of agents) {
    await ag.proc.waitFor(/\brunning\b/, 20_000);
    startupMs.push(Math.round(performance.now() - spawnedAt));
  }
  const ok = await until(async () => (await client.exec(["curl", "-s", "--connect-timeout", "0.2", "--max-time", "3", `http://${HTTP_SVC}/`])).stdout === "server", 20_000, 50);
  if (!ok) throw new Error(`no answer through the tunnel within 20 s; n1:\n${agents[0]!.proc.output().slice(-3000)}`);

  const probe = async (): Promise<unknown[]> => {
    if (!a.probe) return [];
    const out: unknown[] = [];
    for (const ag of agents) {
      const file = join(probeDir, `${ag.proc.proc.pid}.json`);
      writeFileSync(file, "");
      ag.proc.proc.kill("SIGUSR2");
      await until(async () => existsSync(file) && readFileSync(file, "utf8").length > 0, 5000, 20);
      const doc = JSON.parse(readFileSync(file, "utf8"));
      doc.heapSizeMiB = Math.round((doc.heapSize / MiB) * 10) / 10;
      doc.extraMiB = Math.round((doc.extraMemorySize / MiB) * 10) / 10;
      out.push({ node: ag.node, ...doc });
    }
    return out;
  };
  const sample = () => agents.map((ag) => memOf(ag.proc.proc.pid));

  await Bun.sleep(idleSeconds * 1000);
  const idle = sample();
  const idleSmaps = agents.map((ag) => smapsOf(ag.proc.proc.pid));
  const idleHeap = await probe();

  const cpu0 = agents.map((ag) => cpuSeconds(ag.proc.proc.pid));
  const iperfRunning = client.must(["iperf3", "-c", IPERF_SVC, "-p", "5201", "-t", String(seconds), "-J"], { timeoutMs: (seconds + 20) * 1000 });
  // With --probe, what is alive half way through the bulk load (after a full GC).
  const bulkHeap = a.probe ? await Bun.sleep((seconds * 1000) / 2).then(probe) : [];
  const iperfRun = await iperfRunning;
  const bulk = JSON.parse(iperfRun.stdout).end?.sum_received;
  if (!bulk) throw new Error(`iperf3 through the tunnel failed: ${iperfRun.stdout.slice(-500)}`);
  const duringBulk = sample();
  const bulkCpu = agents.map((ag, i) => cpuSeconds(ag.proc.proc.pid) - cpu0[i]!);
  const wrk = await client.must(["wrk", "-t2", "-c64", `-d${seconds}s`, `http://${HTTP_SVC}/`], { timeoutMs: (seconds + 20) * 1000 });
  const requests = Number(wrk.stdout.match(/(\d+) requests in/)?.[1] ?? 0);
  if (requests === 0) throw new Error(`wrk through the tunnel answered nothing: ${wrk.stdout.slice(-500)}`);
  await Bun.sleep(1000);
  const after = sample();
  const afterSmaps = agents.map((ag) => smapsOf(ag.proc.proc.pid));
  // What the allocators give back on their own in the next seconds (no load, no forced GC).
  const settled: Mem[][] = [];
  for (let s = 0; s < settleSeconds; s += 5) {
    await Bun.sleep(Math.min(5, settleSeconds - s) * 1000);
    settled.push(sample());
  }
  const afterHeap = await probe();
  // After the probe's full GC: what a collection gives back to the system.
  const afterGc = a.probe ? sample() : undefined;

  const max = (pick: (m: Mem) => number, s: Mem[]) => Math.max(...s.map(pick));
  const results = [
    { name: "mem.rss_idle_mib", unit: "MiB", value: max((m) => m.rss, idle), runs: idle.map((m) => m.rss) },
    { name: "mem.rss_after_load_mib", unit: "MiB", value: max((m) => m.rss, after), runs: after.map((m) => m.rss) },
    { name: "mem.hwm_mib", unit: "MiB", value: max((m) => m.hwm, after), runs: after.map((m) => m.hwm) },
    { name: "mem.anon_idle_mib", unit: "MiB", value: max((m) => m.anon, idle), runs: idle.map((m) => m.anon) },
    { name: "mem.anon_after_load_mib", unit: "MiB", value: max((m) => m.anon, after), runs: after.map((m) => m.anon) },
  ];
  const detail = {
    agents: agents.map((ag, i) => ({ node: ag.node, startupMs: startupMs[i], idle: idle[i], idleSmaps: idleSmaps[i], afterLoadSmaps: afterSmaps[i], afterBulk: duringBulk[i], afterLoad: after[i], ...(settled.length ? { settled: settled.map((s) => s[i]!.rss) } : {}), ...(afterGc ? { afterLoadGc: afterGc[i] } : {}) })),
    load: {
      bulkGbps: Math.round((bulk.bits_per_second / 1e9) * 100) / 100,
      // Both agents' CPU in the bulk run per GB moved (what a forced collection would cost).
      bulkCpuSecondsPerGB: Math.round((bulkCpu.reduce((x, y) => x + y, 0) / (bulk.bytes / 1e9)) * 100) / 100,
      httpRequests: requests,
      seconds,
    },
    ...(a.probe ? { heap: { idle: idleHeap, duringBulk: bulkHeap, afterLoad: afterHeap } } : {}),
    code: built ? { bundle: built.entry, files: built.files.length, buildMs: built.ms } : entry,
    bunFlags: a["bun-flag"],
    env: extraEnv,
    edgemesh: EDGEMESH,
    targets: TARGETS,
    loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
  };
  console.error(JSON.stringify(detail, null, 2));
  console.log(JSON.stringify(results));
} catch (err) {
  // The agents' last lines say why a load through the tunnel failed.
  for (const ag of agents) console.error(`--- ${ag.node}'s agent:\n${ag.proc.output().split("\n").slice(-15).join("\n")}`);
  throw err;
} finally {
  for (const ag of agents) await ag.proc.kill("SIGTERM").catch(() => 0);
  // --keep-output DIR: each agent's whole output (incl. what it printed at exit) for a look.
  if (a["keep-output"]) for (const ag of agents) writeFileSync(join(a["keep-output"], `agent-${ag.node}.log`), ag.proc.output());
  await c.destroy();
}
