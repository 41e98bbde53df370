// Through-iptables benchmark in the network-namespace test bed (issue 4): a client pod talks to a
// service whose endpoint is a pod on the same node, via the ClusterIP (DNAT -> agent -> pod) and,
// in the same run, straight to the pod IP. Reports iperf3 bulk throughput, 64-connection HTTP
// request rate (wrk) and the agent's RSS idle and after load, as one JSON object.
//   bun bench/netns-bench.ts [--seconds 5] [--rounds 2]
// Needs root (namespaces) and the agent (bun src/main/index.ts agent). Touches nothing outside
// the namespaces it creates.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createCluster, serviceYaml, until } from "../test/e2e/harness.ts";

const { values: a } = parseArgs({ options: { seconds: { type: "string", default: "5" }, rounds: { type: "string", default: "2" } } });
const seconds = Math.min(60, Math.max(1, Number(a.seconds)));
const rounds = Math.min(5, Math.max(1, Number(a.rounds)));

const SERVER_IP = "10.244.1.10";
const IPERF_SVC = "10.96.2.1";
const HTTP_SVC = "10.96.2.2";

/** CPU time (user + system) of a process so far, in ms (clock ticks are 1/100 s on Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Math.round((Number(line?.split(/\s+/)[1] ?? 0) / 1024) * 10) / 10;
}

const c = await createCluster({
  lans: [{ name: "lan", cidr: "10.10.0.0/24" }],
  nodes: [{ name: "n1", lan: "lan", ip: "10.10.0.11", podCidr: "10.244.1.0/24" }],
});
try {
  const n1 = c.node("n1");
  const server = await n1.addPod("server", SERVER_IP);
  const client = await n1.addPod("client", "10.244.1.100");
  await c.startApp(server);
  const iperf = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER_IP, "-p", "5201"]);
  await iperf.waitFor(/Server listening/);
  c.writeManifest("iperf.yaml", serviceYaml({ name: "iperf", clusterIP: IPERF_SVC, ports: [{ name: "iperf", port: 5201, targetPort: 5201 }], endpoints: [{ ip: SERVER_IP, node: "n1" }] }));
  c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: HTTP_SVC, ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: SERVER_IP, node: "n1" }] }));
  const agent = await c.startAgent("n1");
  const pid = agent.proc.proc.pid;
  if (!(await until(async () => (await client.exec(["curl", "-s", "--max-time", "1", `http://${HTTP_SVC}/`])).stdout === "server", 5000))) {
    throw new Error("service not reachable through the agent");
  }
  await Bun.sleep(1000);
  const rssIdle = rssMB(pid);

  // The agent's CPU per unit of work through it: unlike the rates, hardly moved by other load.
  const agentCost = { iperfCpuMs: 0, iperfBytes: 0, httpCpuMs: 0, httpRequests: 0 };
  const iperfGbps = async (host: string) => {
    const cpu0 = cpuMs(pid);
    const r = await client.must(["iperf3", "-c", host, "-p", "5201", "-t", String(seconds), "-J"], { timeoutMs: (seconds + 20) * 1000 });
    const sum = JSON.parse(r.stdout).end.sum_received;
    if (host === IPERF_SVC) {
      agentCost.iperfCpuMs += cpuMs(pid) - cpu0;
      agentCost.iperfBytes += sum.bytes;
    }
    return Math.round((sum.bits_per_second / 1e9) * 100) / 100;
  };
  const wrkRps = async (url: string) => {
    const cpu0 = cpuMs(pid);
    const r = await client.must(["wrk", "-t2", "-c64", `-d${seconds}s`, url], { timeoutMs: (seconds + 20) * 1000 });
    if (url.includes(HTTP_SVC)) {
      agentCost.httpCpuMs += cpuMs(pid) - cpu0;
      agentCost.httpRequests += Number(r.stdout.match(/(\d+) requests in/)?.[1] ?? 0);
    }
    return Math.round(Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0));
  };

  const res = { iperfDirect: [] as number[], iperfService: [] as number[], httpDirect: [] as number[], httpService: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    res.iperfDirect.push(await iperfGbps(SERVER_IP));
    res.iperfService.push(await iperfGbps(IPERF_SVC));
    res.httpDirect.push(await wrkRps(`http://${SERVER_IP}:8080/`));
    res.httpService.push(await wrkRps(`http://${HTTP_SVC}/`));
  }
  const rssAfter = rssMB(pid);
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
  // Each round measures direct and service back to back, so other load on the machine hits both
  // alike; the median of the per-round ratios is steadier than a ratio of medians.
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const ratios = (s: number[], d: number[]) => s.map((x, i) => round2(x / d[i]!));
  const ratio = (s: number[], d: number[]) => median(ratios(s, d));
  console.log(
    JSON.stringify(
      {
        seconds,
        rounds,
        loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
        iperf3: { directGbps: res.iperfDirect, serviceGbps: res.iperfService, roundRatios: ratios(res.iperfService, res.iperfDirect), ratio: ratio(res.iperfService, res.iperfDirect), target: 0.75, edgemesh: "0.57-0.59" },
        http64: { directRps: res.httpDirect, serviceRps: res.httpService, roundRatios: ratios(res.httpService, res.httpDirect), ratio: ratio(res.httpService, res.httpDirect), target: 0.7, edgemesh: "0.50-0.53" },
        agentCpu: {
          msPerGB: Math.round(agentCost.iperfCpuMs / (agentCost.iperfBytes / 1e9)),
          usPerRequest: Math.round((agentCost.httpCpuMs * 1000) / Math.max(1, agentCost.httpRequests)),
        },
        agentRssMB: { idle: rssIdle, afterLoad: rssAfter, edgemesh: { idle: 54, afterLoad: "62-66" } },
      },
      null,
      2,
    ),
  );
} finally {
  await c.destroy();
}
