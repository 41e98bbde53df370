// Soak test (not in CI): two nodes in the network-namespace test bed, each with a real agent
// (tunnel on, PSK), four backend pods on n2 and a client pod on n1 that sends a steady mix of
// HTTP, TCP echo (short and one long-lived connection), UDP echo (new flows all the time) and
// DNS through n1's agent and the tunnel, for --minutes. Every --churn seconds the service's
// endpoints change (a rotating subset of the four pods). Every --fault-every seconds one fault
// in turn: a backend pod killed -9 and restarted 3 s later (still listed meanwhile), the n1-n2
// link cut silently for 5 s (iptables DROP in n2's namespace), n2's agent killed -9 and
// restarted. Every --interval seconds one row: requests ok/failed per kind, p99 latency, both
// agents' RSS, open fds, tunnel streams and warning lines. At the end: the failed requests no
// fault explains, the gauges after the load has drained against their idle values before it,
// RSS and fds flatness after warm-up; exit 1 if any of these fails. --smoke: a 90 s run with a
// fault every 15 s, usable as a smoke test.
//
//   bun bench/soak.ts [--minutes 10] [--smoke] [--churn 5] [--fault-every 60]
//                     [--faults pod-kill,link-cut,agent-restart] [--interval 30] [--out soak.json]
//                     [--rate-http 20] [--rate-tcp 10] [--rate-udp 20] [--rate-dns 20]
// Needs root (namespaces). Touches nothing outside the namespaces it creates; the load is
// bounded by the rates (default ~75 operations a second) and the run by --minutes plus at most
// 2 minutes of set-up and drain.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BUN, APP_PORTS, createCluster, serviceYaml, until, type Agent, type AgentOptions } from "../test/e2e/harness.ts";
import { oneLan, type Pod } from "../test/support/netns.ts";
import type { Watched } from "../test/support/process.ts";
import { drained, explain, flat, KINDS, type Failure, type FaultWindow, type Idle, type Kind } from "./soak/judge.ts";

const { values: a } = parseArgs({
  options: {
    minutes: { type: "string" },
    smoke: { type: "boolean", default: false },
    churn: { type: "string" },
    "fault-every": { type: "string" },
    faults: { type: "string", default: "pod-kill,link-cut,agent-restart" },
    interval: { type: "string" },
    out: { type: "string" },
    "rate-http": { type: "string", default: "20" },
    "rate-tcp": { type: "string", default: "10" },
    "rate-udp": { type: "string", default: "20" },
    "rate-dns": { type: "string", default: "20" },
  },
});
const num = (v: string | undefined, dflt: number) => (v === undefined ? dflt : Number(v));
const minutes = Math.min(24 * 60, Math.max(0.5, num(a.minutes, a.smoke ? 1.5 : 10)));
const churnMs = Math.max(1, num(a.churn, a.smoke ? 2 : 5)) * 1000;
const faultEveryMs = Math.max(0, num(a["fault-every"], a.smoke ? 15 : 60)) * 1000;
const intervalS = Math.max(5, num(a.interval, a.smoke ? 10 : 30));
const FAULTS = ["pod-kill", "link-cut", "agent-restart"] as const;
type FaultKind = (typeof FAULTS)[number];
const faultKinds = a.faults!.split(",").filter(Boolean) as FaultKind[];
for (const f of faultKinds) if (!FAULTS.includes(f)) throw new Error(`--faults: unknown fault ${f} (known: ${FAULTS.join(", ")})`);
const LOAD = join(import.meta.dir, "soak/load.ts");
const TIMEOUT_MS = 3000; // load.ts's per-request timeout
const GRACE_MS = 5000; // recovery allowed after a fault ends (tunnel redial, TCP retransmission backoff)
const UDP_IDLE_S = 10; // edgeProxy.udpIdleTimeoutSeconds here, so the drain is short

const SVC_IP = "10.96.3.1";
const OTHER_IP = "10.96.3.2";
const PODS = [0, 1, 2, 3].map((i) => ({ name: `b${i}`, ip: `10.244.2.${10 + i}` }));

/** Endpoint sets in turn: all but one pod, and every other time all but two. */
function endpointsAt(k: number): typeof PODS {
  return PODS.filter((_, i) => i !== k % 4 && (k % 2 === 0 || i !== (k + 2) % 4));
}

function manifest(k: number): string {
  return serviceYaml({
    name: "soak",
    clusterIP: SVC_IP,
    ports: [
      { name: "http", port: 80, targetPort: APP_PORTS.http },
      { name: "tcp", port: 9000, targetPort: APP_PORTS.tcp },
      { name: "udp", port: 9001, targetPort: APP_PORTS.udp, protocol: "UDP" },
    ],
    endpoints: endpointsAt(k).map((p) => ({ ip: p.ip, node: "n2", name: p.name })),
  });
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Math.round((Number(line?.split(/\s+/)[1] ?? 0) / 1024) * 10) / 10;
}
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const warnOf = (agent: Agent) => agent.proc.output().split("\n").filter((l) => / (WARN|ERROR) /.test(l));
const warnLines = (agent: Agent) => warnOf(agent).length;
/** The distinct warnings of an agent ("LEVEL [component] message", numbers as N), most frequent first. */
function warnKinds(agent: Agent): Record<string, number> {
  const by: Record<string, number> = {};
  for (const l of warnOf(agent)) {
    const m = l.match(/ (WARN|ERROR) +(\[[^\]]*\] .*?)(?: \w+=|$)/);
    const key = `${m?.[1] ?? "?"} ${(m?.[2] ?? l).replace(/\d+/g, "N")}`;
    by[key] = (by[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(by).sort((x, y) => y[1] - x[1]).slice(0, 8));
}

/** The gauges of one agent, from its /metrics (inside its node's namespace). */
async function gauges(agent: Agent): Promise<Omit<Idle, "fds">> {
  const r = await agent.node.exec(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"]);
  const get = (re: RegExp) => Number(r.stdout.match(re)?.[1] ?? NaN);
  return {
    tcpActive: get(/^edgemesh_proxy_tcp_active (\S+)$/m),
    udpFlows: get(/^edgemesh_proxy_udp_flows_active (\S+)$/m),
    tcpStreams: get(/^edgemesh_tunnel_proxy_streams_open_by_protocol\{protocol="tcp"\} (\S+)$/m),
    udpStreams: get(/^edgemesh_tunnel_proxy_streams_open_by_protocol\{protocol="udp"\} (\S+)$/m),
  };
}
async function idleOf(agent: Agent): Promise<Idle> {
  return { fds: fdCount(agent.proc.proc.pid), ...(await gauges(agent)) };
}

interface AgentSample {
  pid: number;
  rssMiB: number;
  fds: number;
  streams: number;
  warnLines: number;
}
interface Row {
  t: number;
  load: Record<Kind, { ok: number; fail: number; p50: number; p99: number }>;
  fails: Failure[];
  agents: Record<string, AgentSample>;
}

const hardDeadline = setTimeout(() => {
  console.error("soak: over its time bound, aborting");
  void cleanup().then(() => process.exit(2));
}, (minutes + 3) * 60_000);
const c = await createCluster(oneLan(2));
let stopping = false;
async function cleanup(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await c.destroy();
}
process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
process.on("SIGTERM", () => void cleanup().then(() => process.exit(143)));

let exitCode = 0;
try {
  const psk = join(c.dir, "psk");
  writeFileSync(psk, "edgemesh-soak\n");
  const n2 = c.node("n2");
  const pods: Pod[] = [];
  const apps: Watched[] = [];
  for (const p of PODS) {
    const pod = await n2.addPod(p.name, p.ip);
    pods.push(pod);
    apps.push(await c.startApp(pod));
  }
  const client = await c.node("n1").addPod("client", "10.244.1.100");
  let churns = 0;
  c.writeManifest("soak.yaml", manifest(churns));
  c.writeManifest("other.yaml", serviceYaml({ name: "other", clusterIP: OTHER_IP, ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: PODS[0]!.ip, node: "n2" }] }));
  const options: AgentOptions = { tunnel: { psk }, udpIdleTimeoutSeconds: UDP_IDLE_S };
  const agents: Record<string, Agent> = {};
  for (const n of ["n2", "n1"]) agents[n] = await c.startAgent(n, options);
  const ready = await until(async () => (await client.exec(["curl", "-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", `http://${SVC_IP}/`])).stdout === "200", 30_000, 200);
  if (!ready) throw new Error(`no answer through the tunnel; n1:\n${agents.n1!.proc.output().slice(-3000)}`);
  await until(async () => (await gauges(agents.n1!)).tcpStreams === 0, 5000, 100);
  const idleBefore: Record<string, Idle> = {};
  for (const [n, ag] of Object.entries(agents)) idleBefore[n] = await idleOf(ag);

  const load = client.spawn([
    BUN, LOAD,
    "--http", `${SVC_IP}:80`, "--tcp", `${SVC_IP}:9000`, "--udp", `${SVC_IP}:9001`, "--dns", "169.254.96.16:53",
    "--names", `soak.default.svc.cluster.local=${SVC_IP},other.default.svc.cluster.local=${OTHER_IP},soak.default=${SVC_IP}`,
    "--seconds", String(Math.round(minutes * 60)), "--report", String(intervalS),
    "--rate-http", a["rate-http"]!, "--rate-tcp", a["rate-tcp"]!, "--rate-udp", a["rate-udp"]!, "--rate-dns", a["rate-dns"]!,
  ]);
  const loadEnds = Date.now() + minutes * 60_000;
  const churner = setInterval(() => c.writeManifest("soak.yaml", manifest(++churns)), churnMs);

  // Faults, one at a time, in turn; the last one ends well before the load does.
  const faults: FaultWindow[] = [];
  const inject = async (kind: FaultKind, n: number): Promise<void> => {
    const start = Date.now();
    let what: string = kind;
    let explains: Kind[] = ["http", "tcp", "tcpl", "udp"]; // everything crossing the tunnel; DNS is n1's own
    if (kind === "pod-kill") {
      // Still listed while dead (as before Kubernetes notices): new connections must go to a
      // live endpoint; what was pinned to it (the long-lived connection, UDP flows) may fail.
      const i = n % PODS.length;
      what = `pod ${PODS[i]!.name} killed -9 for 3 s`;
      explains = ["tcpl", "udp"];
      await apps[i]!.kill("SIGKILL");
      await Bun.sleep(3000);
      apps[i] = await c.startApp(pods[i]!);
    } else if (kind === "link-cut") {
      what = "n1-n2 link cut silently for 5 s";
      const rules = [["INPUT", "-i"], ["OUTPUT", "-o"]];
      for (const [chain, dir] of rules) await n2.must(["iptables", "-I", chain!, dir!, "eth0", "-j", "DROP"]);
      await Bun.sleep(5000);
      for (const [chain, dir] of rules) await n2.must(["iptables", "-D", chain!, dir!, "eth0", "-j", "DROP"]);
    } else {
      what = "n2's agent killed -9 and restarted";
      agents.n2!.proc.proc.kill("SIGKILL");
      await agents.n2!.proc.proc.exited;
      agents.n2 = await c.startAgent("n2", options);
    }
    faults.push({ what, start, end: Date.now(), explains });
  };
  let faultRunning: Promise<void> | undefined;
  let nFaults = 0;
  const faulter =
    faultEveryMs > 0 && faultKinds.length > 0
      ? setInterval(() => {
          if (faultRunning || Date.now() > loadEnds - 20_000) return;
          const n = nFaults++;
          faultRunning = inject(faultKinds[n % faultKinds.length]!, Math.floor(n / faultKinds.length)).finally(() => (faultRunning = undefined));
        }, faultEveryMs)
      : undefined;

  console.log(`soak: ${minutes} min, endpoints changed every ${churnMs / 1000} s, ${faultEveryMs ? `a fault every ${faultEveryMs / 1000} s (${faultKinds.join(", ")})` : "no faults"}, a row every ${intervalS} s`);
  console.log("    t  http ok/fail   tcp ok/fail  tcpl ok/fail   udp ok/fail   dns ok/fail  p99 http/udp/dns ms   n1 RSS/fds/strm/warn  n2 RSS/fds/strm/warn");
  const rows: Row[] = [];
  let seen = 0;
  while (!/"done":true/.test(load.output())) {
    if (load.proc.exitCode !== null) throw new Error(`load generator exited ${load.proc.exitCode}:\n${load.output().slice(-2000)}`);
    await Bun.sleep(500);
    const lines = load.output().split("\n").filter((l) => l.startsWith('{"t"'));
    for (; seen < lines.length; seen++) {
      const { t, fails, ...kinds } = JSON.parse(lines[seen]!) as Row["load"] & { t: number; fails: Failure[] };
      const row: Row = { t, load: kinds as Row["load"], fails, agents: {} };
      for (const [n, ag] of Object.entries(agents)) {
        const pid = ag.proc.proc.pid;
        const g = await gauges(ag).catch(() => ({ tcpStreams: NaN, udpStreams: NaN }));
        // A process just killed by a fault (its restart not yet done) has no /proc entry: NaN.
        const or = (f: () => number) => {
          try {
            return f();
          } catch {
            return NaN;
          }
        };
        row.agents[n] = { pid, rssMiB: or(() => rssMiB(pid)), fds: or(() => fdCount(pid)), streams: g.tcpStreams + g.udpStreams, warnLines: warnLines(ag) };
      }
      rows.push(row);
      const k = row.load;
      const f = (x: { ok: number; fail: number }) => `${x.ok}/${x.fail}`.padStart(12);
      const ag = (n: string) => `${row.agents[n]!.rssMiB}/${row.agents[n]!.fds}/${row.agents[n]!.streams}/${row.agents[n]!.warnLines}`.padStart(20);
      const note = fails.length ? `  ${fails.slice(0, 2).map((x) => `${x[1]}: ${x[2]}`).join("; ")}` : "";
      console.log(`${String(t).padStart(5)} ${f(k.http)} ${f(k.tcp)} ${f(k.tcpl)} ${f(k.udp)} ${f(k.dns)}  ${`${k.http.p99}/${k.udp.p99}/${k.dns.p99}`.padStart(18)} ${ag("n1")} ${ag("n2")}${note}`);
    }
  }
  clearInterval(churner);
  if (faulter) clearInterval(faulter);
  await faultRunning;

  // Drain: the load has stopped; connections close at once, UDP flows after their idle timeout.
  const drainStart = Date.now();
  const idleAfter: Record<string, Idle> = {};
  const problems: Record<string, string[]> = {};
  await until(async () => {
    for (const [n, ag] of Object.entries(agents)) {
      idleAfter[n] = await idleOf(ag);
      problems[n] = drained(idleBefore[n]!, idleAfter[n]!, 1);
    }
    return Object.values(problems).every((p) => p.length === 0);
  }, (UDP_IDLE_S + 20) * 1000, 1000);
  const drainMs = Date.now() - drainStart;

  // Judgement.
  const totals = Object.fromEntries(KINDS.map((k) => [k, { ok: 0, fail: 0 }])) as Record<Kind, { ok: number; fail: number }>;
  for (const r of rows) for (const k of KINDS) (totals[k].ok += r.load[k].ok), (totals[k].fail += r.load[k].fail);
  const failed = KINDS.reduce((s, k) => s + totals[k].fail, 0);
  const listed = rows.flatMap((r) => r.fails);
  const { explained, unexplained } = explain(listed, faults, TIMEOUT_MS, GRACE_MS);
  const unlisted = failed - listed.length; // beyond load.ts's cap per line: counted as unexplained
  const trends: Record<string, unknown> = {};
  const flatProblems: string[] = [];
  for (const n of Object.keys(agents)) {
    // Only the agent process that ran last (n2's restarts start a new one).
    const mine = rows.map((r) => r.agents[n]!).filter((s) => s.pid === agents[n]!.proc.proc.pid && Number.isFinite(s.rssMiB) && Number.isFinite(s.fds));
    const rss = flat(mine.map((s) => s.rssMiB), 1.1, 5);
    const fds = flat(mine.map((s) => s.fds), 1, 8);
    trends[n] = { rows: mine.length, rssMiB: rss, fds, rssFirstLast: [mine[0]?.rssMiB, mine.at(-1)?.rssMiB], warnings: warnKinds(agents[n]!) };
    if (rss && !rss.ok) flatProblems.push(`${n} RSS rose after warm-up: ${rss.firstMax} -> ${rss.secondMax} MiB`);
    if (fds && !fds.ok) flatProblems.push(`${n} fds rose after warm-up: ${fds.firstMax} -> ${fds.secondMax}`);
  }
  // Per fault: failures it explains and the last one to start after it ended (recovery).
  const perFault = faults.map((w) => {
    const mine = explained.filter(([t, k]) => w.explains.includes(k) && t >= w.start - TIMEOUT_MS && t <= w.end + GRACE_MS);
    const kinds: Record<string, number> = {};
    for (const [, k, e] of mine) kinds[`${k}: ${e}`] = (kinds[`${k}: ${e}`] ?? 0) + 1;
    const last = mine.length ? Math.max(...mine.map(([t]) => t)) : undefined;
    return { what: w.what, lastedSeconds: Math.round((w.end - w.start) / 100) / 10, failed: kinds, lastFailureStartedAfterEndSeconds: last === undefined ? null : Math.round((last - w.end) / 100) / 10 };
  });
  const summary = {
    minutes,
    churnSeconds: churnMs / 1000,
    endpointChanges: churns,
    faults: faults.map((f) => `${f.what} at +${Math.round((f.start - (loadEnds - minutes * 60_000)) / 1000)} s`),
    perFault,
    totals,
    failed,
    explained: explained.length,
    unexplained: unexplained.length + unlisted,
    unexplainedSamples: unexplained.slice(0, 10).map(([t, k, e]) => `${new Date(t).toISOString().slice(11, 23)} ${k}: ${e}`),
    idleBefore,
    idleAfter,
    drainSeconds: Math.round(drainMs / 100) / 10,
    notDrained: problems,
    trends,
  };
  for (const f of perFault) console.log(`fault: ${f.what} (${f.lastedSeconds} s): ${JSON.stringify(f.failed)}${f.lastFailureStartedAfterEndSeconds === null ? "" : `, last failure started ${f.lastFailureStartedAfterEndSeconds} s after its end`}`);
  const { perFault: _pf, ...brief } = summary;
  console.log(`soak summary: ${JSON.stringify(brief)}`);
  if (a.out) writeFileSync(a.out, JSON.stringify({ ...summary, faultWindows: faults, rows }, null, 1));
  const verdict = [
    ...(summary.unexplained > 0 ? [`${summary.unexplained} failed requests no fault explains`] : []),
    ...Object.entries(problems).flatMap(([n, p]) => p.map((x) => `${n} not back to idle: ${x}`)),
    ...flatProblems,
  ];
  console.log(verdict.length ? `soak: FAIL\n  ${verdict.join("\n  ")}` : `soak: PASS (${failed} failed requests, all during faults; gauges back to idle in ${summary.drainSeconds} s)`);
  exitCode = verdict.length ? 1 : 0;
} catch (err) {
  console.error(`soak: ${(err as Error).stack ?? err}`);
  exitCode = 2;
} finally {
  clearTimeout(hardDeadline);
  await cleanup();
}
process.exit(exitCode);
