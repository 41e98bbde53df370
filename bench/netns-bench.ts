// Benchmarks in the network-namespace test bed, each against direct in the same run.
//
//   --mode local (default, issue 4): a client pod talks to a service whose endpoint is a pod on
//     the same node, via the ClusterIP (DNAT -> agent -> pod) and straight to the pod IP.
//   --mode cross-node (issue 6): a client pod on n1 talks to a service whose endpoint is a pod on
//     n2, via the ClusterIP (DNAT -> n1's agent -> libp2p tunnel, PSK + Noise + yamux over TCP ->
//     n2's agent -> pod) and straight to the pod IP (the bed routes pod CIDRs between the nodes,
//     as a host-gw CNI would, for the reference only; the agents tunnel regardless). Also times
//     the first cross-node request from the moment both agents are started.
//   --mode relay (issue 6): as cross-node, but n1 and n2 firewall each other's tunnel port
//     (20006, rejected in both nodes' own iptables), so the tunnel goes n1 -> relay node -> n2
//     (circuit relay v2 without limits, as EdgeMesh runs it). The pod-to-pod reference is direct.
//
// Reports iperf3 bulk throughput, 64-connection HTTP request rate (wrk), the agents' CPU per unit
// of work and their RSS idle and after load, as one JSON object.
//   --ref nginx (local and cross-node; off by default): the same wrk through nginx stream relays
//     on the agents' path in the same rounds (bench/netns-nginx.ts: one hop in local mode; in
//     cross-node mode n1 -> n2 plain TCP, TLS chacha20 and TLS AES-GCM), with each hop's CPU per
//     request, wrk's mean latency and the machine's busy share during each wrk run: the best a
//     userspace relay reaches here.
//   bun bench/netns-bench.ts [--mode local|cross-node|relay] [--seconds 5] [--rounds 2] [--ref nginx]
// Needs root (namespaces) and the agent (bun src/main/index.ts agent). Touches nothing outside
// the namespaces it creates.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createCluster, serviceYaml, until, type Agent } from "../test/e2e/harness.ts";
import { oneLan } from "../test/support/netns.ts";
import { startNginxRefs, type RefPath } from "./netns-nginx.ts";

const { values: a } = parseArgs({
  options: { seconds: { type: "string", default: "5" }, rounds: { type: "string", default: "2" }, mode: { type: "string", default: "local" }, ref: { type: "string", default: "" } },
});
const seconds = Math.min(60, Math.max(1, Number(a.seconds)));
const rounds = Math.min(5, Math.max(1, Number(a.rounds)));
const MODES = ["local", "cross-node", "relay"] as const;
const mode = MODES.find((m) => m === a.mode);
if (!mode) throw new Error(`--mode: expected one of ${MODES.join(", ")}, got ${a.mode}`);
const cross = mode !== "local";
const relayed = mode === "relay";
if (a.ref !== "" && a.ref !== "nginx") throw new Error(`--ref: expected nginx, got ${a.ref}`);
if (a.ref && relayed) throw new Error("--ref nginx: local and cross-node modes only");
const TUNNEL_PORT = 20006;

const SERVER_IP = cross ? "10.244.2.10" : "10.244.1.10";
const IPERF_SVC = "10.96.2.1";
const HTTP_SVC = "10.96.2.2";

/** Targets and EdgeMesh's own figures from the issues (same bed, same kind of machine). */
const REFERENCE = relayed
  ? { iperf: { target: undefined, edgemesh: undefined }, http: { target: undefined, edgemesh: undefined }, firstRequestMs: { target: undefined, edgemesh: undefined } }
  : cross
  ? { iperf: { target: 0.2, edgemesh: "0.154 (2.54 of 16.5 Gbit/s)" }, http: { target: 0.6, edgemesh: "0.47 (20.7k of 43.6k req/s)" }, firstRequestMs: { target: 2000, edgemesh: "~1000 (mDNS)" } }
  : { iperf: { target: 0.75, edgemesh: "0.57-0.59" }, http: { target: 0.7, edgemesh: "0.50-0.53" }, rss: { idle: 54, afterLoad: "62-66" } };

/** CPU time (user + system) of a process so far, in ms (clock ticks are 1/100 s on Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Jiffies of all CPUs since boot: total and idle (idle + iowait), from /proc/stat's first line. */
function machineTicks(): { total: number; idle: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { total: f.slice(0, 8).reduce((s, x) => s + x, 0), idle: f[3]! + f[4]! };
}

function rssMB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Math.round((Number(line?.split(/\s+/)[1] ?? 0) / 1024) * 10) / 10;
}

const c = await createCluster(
  oneLan(cross ? 2 : 1, {
    podRoutes: cross,
    nodes: relayed ? [{ name: "relay", lan: "lan", ip: "10.10.0.5", podCidr: "10.244.9.0/24" }] : [],
  }),
);
try {
  const serverNode = cross ? "n2" : "n1";
  const server = await c.node(serverNode).addPod("server", SERVER_IP);
  const client = await c.node("n1").addPod("client", "10.244.1.100");
  const serverPid = (await c.startApp(server)).proc.pid;
  const iperf = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER_IP, "-p", "5201"]);
  await iperf.waitFor(/Server listening/);
  c.writeManifest("iperf.yaml", serviceYaml({ name: "iperf", clusterIP: IPERF_SVC, ports: [{ name: "iperf", port: 5201, targetPort: 5201 }], endpoints: [{ ip: SERVER_IP, node: serverNode }] }));
  c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: HTTP_SVC, ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: SERVER_IP, node: serverNode }] }));

  const agents: Agent[] = [];
  let firstRequestMs: number | undefined;
  if (cross) {
    const psk = join(c.dir, "psk");
    writeFileSync(psk, "edgemesh-netns-bench\n");
    const relayNodes = relayed ? [{ nodeName: "relay", advertiseAddress: ["10.10.0.5"] }] : undefined;
    if (relayed) {
      // A firewall between the two nodes' tunnel ports: only the relay connects them.
      for (const [node, other] of [["n1", "10.10.0.12"], ["n2", "10.10.0.11"]] as const) {
        const place = c.node(node);
        await place.must(["iptables", "-I", "INPUT", "-s", other, "-p", "tcp", "--dport", String(TUNNEL_PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]);
        await place.must(["iptables", "-I", "OUTPUT", "-d", other, "-p", "tcp", "--dport", String(TUNNEL_PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]);
      }
      agents.push(await c.startAgent("relay", { tunnel: { psk, relayNodes } }));
    }
    // Both agents are spawned together; the clock runs until the client pod on n1 gets an
    // answer from the pod on n2 through the ClusterIP (as test/e2e/cross-node.test.ts).
    const t0 = Date.now();
    agents.push(c.spawnAgent("n1", { tunnel: { psk, relayNodes } }), c.spawnAgent("n2", { tunnel: { psk, relayNodes } }));
    const ok = await until(async () => (await client.exec(["curl", "-s", "--connect-timeout", "0.2", "--max-time", "3", `http://${HTTP_SVC}/`])).stdout === "server", 20_000, 20);
    firstRequestMs = Date.now() - t0;
    if (!ok) throw new Error(`no cross-node answer within 20 s; n1:\n${agents.at(-2)!.proc.output().slice(-3000)}`);
    if (relayed) {
      // The bytes must really go through the relay: n1's only connection to n2 is a circuit.
      const peers = JSON.parse((await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"])).stdout) as { nodeName?: string; relayed: boolean }[];
      const toN2 = peers.find((p) => p.nodeName === "n2");
      if (!toN2?.relayed) throw new Error(`relay mode: n1's connection to n2 is not relayed: ${JSON.stringify(peers)}`);
    }
  } else {
    agents.push(await c.startAgent("n1"));
    if (!(await until(async () => (await client.exec(["curl", "-s", "--max-time", "1", `http://${HTTP_SVC}/`])).stdout === "server", 5000))) {
      throw new Error("service not reachable through the agent");
    }
  }
  const pids = agents.map((ag) => ag.proc.proc.pid);
  const refs: RefPath[] = a.ref
    ? await startNginxRefs({
        dir: c.dir,
        entry: c.node("n1"),
        exit: cross ? c.node("n2") : undefined,
        server: `${SERVER_IP}:8080`,
        probe: async (url) => (await client.exec(["curl", "-s", "--max-time", "1", url])).stdout === "server",
      })
    : [];
  const cpuAll = () => pids.reduce((s, p) => s + cpuMs(p), 0);
  await Bun.sleep(1000);
  const rssIdle = pids.map(rssMB);

  // The agents' CPU per unit of work through them: unlike the rates, hardly moved by other load.
  const agentCost = { iperfCpuMs: 0, iperfBytes: 0, httpCpuMs: 0, httpRequests: 0 };
  const iperfGbps = async (host: string) => {
    const cpu0 = cpuAll();
    const r = await client.must(["iperf3", "-c", host, "-p", "5201", "-t", String(seconds), "-J"], { timeoutMs: (seconds + 20) * 1000 });
    const out = JSON.parse(r.stdout);
    const sum = out.end?.sum_received;
    if (!sum) throw new Error(`iperf3 to ${host} failed: ${out.error ?? r.stdout.slice(-500)}`);
    if (host === IPERF_SVC) {
      agentCost.iperfCpuMs += cpuAll() - cpu0;
      agentCost.iperfBytes += sum.bytes;
    }
    return Math.round((sum.bits_per_second / 1e9) * 100) / 100;
  };
  // Per wrk path: CPU per hop process (node -> pid) and the machine's busy share, summed over rounds.
  const hopPids: Record<string, Record<string, number>> = {
    ours: Object.fromEntries(agents.map((ag) => [ag.node.name, ag.proc.proc.pid])),
    ...Object.fromEntries(refs.map((r) => [r.name, r.pids])),
  };
  const hopCost: Record<string, { cpuMs: Record<string, number>; serverMs: number; requests: number; busy: number[]; latencyMs: number[] }> = {};
  const wrkRps = async (url: string, path: string) => {
    const cpu0 = cpuAll();
    const hops = Object.entries(hopPids[path] ?? {});
    const hop0 = hops.map(([, pid]) => cpuMs(pid));
    const server0 = cpuMs(serverPid);
    const stat0 = machineTicks();
    const r = await client.must(["wrk", "-t2", "-c64", `-d${seconds}s`, url], { timeoutMs: (seconds + 20) * 1000 });
    const stat1 = machineTicks();
    const requests = Number(r.stdout.match(/(\d+) requests in/)?.[1] ?? 0);
    if (url.includes(HTTP_SVC)) {
      agentCost.httpCpuMs += cpuAll() - cpu0;
      agentCost.httpRequests += requests;
    }
    const cost = (hopCost[path] ??= { cpuMs: {}, serverMs: 0, requests: 0, busy: [], latencyMs: [] });
    const lat = r.stdout.match(/Latency\s+([\d.]+)(us|ms|s)\b/);
    if (lat) cost.latencyMs.push(round2(Number(lat[1]) * { us: 0.001, ms: 1, s: 1000 }[lat[2] as "us" | "ms" | "s"]));
    cost.serverMs += cpuMs(serverPid) - server0;
    hops.forEach(([node, pid], i) => (cost.cpuMs[node] = (cost.cpuMs[node] ?? 0) + cpuMs(pid) - hop0[i]!));
    cost.requests += requests;
    cost.busy.push(round2(1 - (stat1.idle - stat0.idle) / Math.max(1, stat1.total - stat0.total)));
    const errors = r.stdout.match(/Socket errors: .*|Non-2xx or 3xx responses: \d+/g);
    if (errors) console.error(`wrk ${url}: ${errors.join("; ")}`);
    return Math.round(Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0));
  };

  const res = { iperfDirect: [] as number[], iperfService: [] as number[], httpDirect: [] as number[], httpService: [] as number[] };
  const refRps: Record<string, number[]> = Object.fromEntries(refs.map((r) => [r.name, [] as number[]]));
  for (let i = 0; i < rounds; i++) {
    res.iperfDirect.push(await iperfGbps(SERVER_IP));
    res.iperfService.push(await iperfGbps(IPERF_SVC));
    res.httpDirect.push(await wrkRps(`http://${SERVER_IP}:8080/`, "direct"));
    res.httpService.push(await wrkRps(`http://${HTTP_SVC}/`, "ours"));
    for (const r of refs) refRps[r.name]!.push(await wrkRps(r.url, r.name));
  }
  const rssAfter = pids.map(rssMB);
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
  // Each round measures direct and service back to back, so other load on the machine hits both
  // alike; the median of the per-round ratios is steadier than a ratio of medians.
  const ratios = (s: number[], d: number[]) => s.map((x, i) => round2(x / d[i]!));
  const ratio = (s: number[], d: number[]) => median(ratios(s, d));
  const usPerRequest = (path: string) => {
    const cost = hopCost[path]!;
    const perHop = Object.fromEntries(Object.entries(cost.cpuMs).map(([node, ms]) => [node, Math.round((ms * 10_000) / Math.max(1, cost.requests)) / 10]));
    const total = Math.round(Object.values(perHop).reduce((s, x) => s + x, 0) * 10) / 10;
    return { ...perHop, total, server: Math.round((cost.serverMs * 10_000) / Math.max(1, cost.requests)) / 10 };
  };
  console.log(
    JSON.stringify(
      {
        mode,
        seconds,
        rounds,
        loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
        ...(firstRequestMs !== undefined ? { firstRequestMs: { measured: firstRequestMs, ...REFERENCE.firstRequestMs } } : {}),
        iperf3: { directGbps: res.iperfDirect, serviceGbps: res.iperfService, roundRatios: ratios(res.iperfService, res.iperfDirect), ratio: ratio(res.iperfService, res.iperfDirect), ...REFERENCE.iperf },
        http64: { directRps: res.httpDirect, serviceRps: res.httpService, roundRatios: ratios(res.httpService, res.httpDirect), ratio: ratio(res.httpService, res.httpDirect), ...REFERENCE.http },
        // Summed over the agents on the path (one in local mode, both ends in cross-node mode).
        agentCpu: {
          msPerGB: Math.round(agentCost.iperfCpuMs / (agentCost.iperfBytes / 1e9)),
          usPerRequest: Math.round((agentCost.httpCpuMs * 1000) / Math.max(1, agentCost.httpRequests)),
        },
        ...(refs.length
          ? {
              // req/s per round and the median per-round ratios to direct and to ours; CPU (user +
              // system, /proc/PID/stat) per request of each hop process, in us (`server`: the HTTP
              // server pod's, outside `total`); the machine's busy share (1 - idle, /proc/stat,
              // both cores) and wrk's mean latency during each wrk run.
              ref: {
                ...Object.fromEntries(refs.map((r) => [r.name, { rps: refRps[r.name], ratio: ratio(refRps[r.name]!, res.httpDirect), oursOverIt: ratio(res.httpService, refRps[r.name]!) }])),
                cpuUsPerRequest: Object.fromEntries(["direct", "ours", ...refs.map((r) => r.name)].map((p) => [p, usPerRequest(p)])),
                machineBusy: Object.fromEntries(Object.entries(hopCost).map(([p, cost]) => [p, cost.busy])),
                latencyMs: Object.fromEntries(Object.entries(hopCost).map(([p, cost]) => [p, cost.latencyMs])),
              },
            }
          : {}),
        agentRssMB: { idle: rssIdle, afterLoad: rssAfter, ...("rss" in REFERENCE ? { edgemesh: REFERENCE.rss } : {}) },
      },
      null,
      2,
    ),
  );
} finally {
  await c.destroy();
}
