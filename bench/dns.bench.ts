// DNS queries/s and CPU per query: our server vs dnsmasq, same machine, same run, same dnsperf.
//   bun bench/dns.bench.ts --short   CI: 2 repeats of 1.5 s per scenario and server (~20 s)
//   bun bench/dns.bench.ts           3 repeats of 5 s, plus bench/dns/answer.bench.ts (in-process)
// Scenarios: a cluster name (ours: template answer; dnsmasq: --host-record); a cached forwarded
// name (both forward x.fwd.test, TTL 300, to a third process, an upstream dnsmasq, and then answer
// from their caches); and an uncacheable forwarded name (TTL 0: every query goes upstream, so this
// measures the forwarder; ours coalesces identical questions in flight, dnsmasq does too).
// Every server is its own process, like dnsperf. Prints a JSON array of results
// (name, value, reference, ratio, runs) on stdout for bench/check.ts; logs to stderr.
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSeconds, firstJson, freePort, spawn, stopAll, waitForDns } from "./dns/procs.ts";

const short = process.argv.includes("--short");
const REPEATS = short ? 2 : 3;
const SECONDS = short ? 1.5 : 5;
const CLUSTER_NAME = "web.default.svc.cluster.local";
const FORWARD_NAME = "x.fwd.test";
const UNCACHED_NAME = "x.nocache.test";
const log = (line: string) => console.error(`[dns-bench] ${line}`);
// With two or more CPUs, the server under test (ours or dnsmasq) gets one CPU and dnsperf
// another, so both servers compete under the same conditions and not with their load generator.
const CPUS = availableParallelism();
const SERVER_CPU = CPUS >= 2 ? CPUS - 1 : -1;
const LOAD_CPU = CPUS >= 2 ? CPUS - 2 : -1;
const pin = (cpu: number) => (cpu >= 0 && Bun.which("taskset") ? ["taskset", "-c", String(cpu)] : []);

interface Run { qps: number; cpuUsPerQuery: number; lost: number }

/** One dnsperf run at saturation against 127.0.0.1:port, with the server's CPU time over it. */
async function dnsperf(port: number, pid: number, name: string): Promise<Run> {
  const file = join(tmpdir(), `dnsperf-${process.pid}-${name}.txt`);
  await Bun.write(file, `${name} A\n`);
  const cpu0 = cpuSeconds(pid);
  const p = spawn([...pin(LOAD_CPU), "dnsperf", "-s", "127.0.0.1", "-p", String(port), "-d", file, "-l", String(SECONDS), "-c", "4", "-q", "256", "-t", "2"]);
  const out = await new Response(p.stdout).text();
  await p.exited;
  const cpu = cpuSeconds(pid) - cpu0;
  const completed = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(qps) || !(completed > 0)) throw new Error(`dnsperf output not understood: ${out.slice(-400)}`);
  return { qps, cpuUsPerQuery: (cpu * 1e6) / completed, lost };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const [upPort, refPort] = [await freePort(), await freePort()];
  const dnsmasq = (port: number, cpu: number, extra: string[]) =>
    spawn([...pin(cpu), "dnsmasq", "--no-daemon", `--port=${port}`, "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
      "--no-hosts", "--cache-size=10000", "--pid-file=", ...extra]);
  // --local-ttl: dnsmasq's own answers have TTL 0 unless told, which no cache keeps.
  // The upstream stands for the network: it shares dnsperf's CPU, not the servers'.
  const upstream = dnsmasq(upPort, LOAD_CPU, ["--local-ttl=300", "--address=/fwd.test/10.0.0.2", `--host-record=${UNCACHED_NAME},10.0.0.3,0`]);
  const reference = dnsmasq(refPort, SERVER_CPU, [`--host-record=${CLUSTER_NAME},10.96.0.0`, `--server=/fwd.test/127.0.0.1#${upPort}`,
    `--server=/nocache.test/127.0.0.1#${upPort}`]);
  const ours = spawn([...pin(SERVER_CPU), process.execPath, new URL("./dns/server.ts", import.meta.url).pathname, "--port", "0", "--upstream", `127.0.0.1:${upPort}`]);
  const { port: ourPort } = await firstJson<{ port: number }>(ours, 10_000);
  for (const port of [upPort, refPort, ourPort]) await waitForDns(port, FORWARD_NAME);
  await waitForDns(refPort, CLUSTER_NAME);
  log(`ours :${ourPort} (pid ${ours.pid}), dnsmasq :${refPort} (pid ${reference.pid}), upstream dnsmasq :${upPort}`);

  const scenarios = [
    { key: "cluster", name: CLUSTER_NAME },
    { key: "cached_forward", name: FORWARD_NAME },
    { key: "uncached_forward", name: UNCACHED_NAME },
  ];
  const runs: Record<string, { ours: Run[]; ref: Run[] }> = {};
  for (let r = 0; r < REPEATS; r++) {
    for (const s of scenarios) {
      const slot = (runs[s.key] ??= { ours: [], ref: [] });
      // Alternate who goes first so drift (thermal, other load) does not favour one side.
      const order = r % 2 === 0 ? (["ours", "ref"] as const) : (["ref", "ours"] as const);
      for (const who of order) {
        const run = who === "ours" ? await dnsperf(ourPort, ours.pid, s.name) : await dnsperf(refPort, reference.pid, s.name);
        slot[who].push(run);
        log(`${s.key} ${who === "ours" ? "ours   " : "dnsmasq"} ${Math.round(run.qps)} q/s, ${run.cpuUsPerQuery.toFixed(2)} CPU-us/q, lost ${run.lost}`);
      }
    }
  }

  const results: object[] = [];
  for (const s of scenarios) {
    const { ours: o, ref } = runs[s.key]!;
    // Ratios are medians of back-to-back pairs: on a shared machine load drifts between pairs,
    // much less within one.
    const qps = median(o.map((x) => x.qps));
    const refQps = median(ref.map((x) => x.qps));
    const qpsRuns = o.map((x, i) => x.qps / ref[i]!.qps);
    results.push({
      name: `dns.${s.key}.qps_ratio`, unit: "x", value: qps, ratio: median(qpsRuns),
      reference: { name: "dnsmasq q/s", value: refQps },
      runs: qpsRuns,
      note: `ours ${Math.round(qps)} q/s vs dnsmasq ${Math.round(refQps)} q/s (${s.name}, dnsperf -c 4 -q 256, ${SECONDS} s x ${REPEATS})`,
    });
    const cpu = median(o.map((x) => x.cpuUsPerQuery));
    const refCpu = median(ref.map((x) => x.cpuUsPerQuery));
    const cpuRuns = o.map((x, i) => ref[i]!.cpuUsPerQuery / x.cpuUsPerQuery);
    results.push({
      name: `dns.${s.key}.cpu_ratio`, unit: "x", value: cpu, ratio: median(cpuRuns),
      reference: { name: "dnsmasq CPU-us/query", value: refCpu },
      runs: cpuRuns,
      note: `ours ${cpu.toFixed(2)} CPU-us/query vs dnsmasq ${refCpu.toFixed(2)} (ratio = dnsmasq/ours, higher is better)`,
    });
  }
  upstream.kill();
  reference.kill();
  ours.kill();
  // The micro-benchmark takes ~30 s (10k-service compiles); CI runs it through the micro list.
  if (!short) results.push(...(await micro()));
  console.log(JSON.stringify(results));
}

/** The in-process answer micro-benchmark (bench/dns/answer.bench.ts), in its own process. */
async function micro(): Promise<object[]> {
  const p = spawn([process.execPath, new URL("./dns/answer.bench.ts", import.meta.url).pathname, "--json"]);
  const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
  const code = await p.exited;
  const line = out.trim().split("\n").reverse().find((l) => l.startsWith("["));
  if (code !== 0 || !line) return [{ name: "dns.answer_template", unit: "ns/op", value: null, error: `answer.bench.ts exit ${code}: ${err.slice(-300)}` }];
  const results = JSON.parse(line) as { name: string; value: number; ratio?: number }[];
  for (const r of results) log(`${r.name} ${r.value.toFixed(1)}${r.ratio ? ` (ratio ${r.ratio.toFixed(2)})` : ""}`);
  return results;
}

try {
  await main();
} catch (err) {
  console.error(`[dns-bench] failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  stopAll();
}
