// Zero-copy experiment: iperf3 bulk throughput and CPU per GiB, all in one run, through
//   direct            iperf3 client -> iperf3 server
//   zc                the splice(2) engine (bench/macro/zerocopy-proxy.ts --mode zc), 1 MiB pipes
//   zc-4MiB           the same with 4 MiB pipes (F_SETPIPE_SZ above fs.pipe-max-size: root only)
//   naive             the plain Bun forwarder (same script, --mode naive)
//   edgemesh          our TCP hot path (bench/macro/proxy-server.ts)
//   socat             socat -b262144
// Runs are interleaved (one of each per repeat) so drift hits all alike.
//   bun bench/macro/zerocopy-bench.ts [--seconds 5] [--repeats 3] [--json out.json]
//       [--subjects direct,zc,zc-4MiB,naive,edgemesh,socat]

import { parseArgs } from "node:util";
import { cpuSecondsOf, freePort, memoryOf, spawnBun, spawnChild, stopAll, waitTcp } from "./procs.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    repeats: { type: "string", default: "3" },
    json: { type: "string" },
    // Fewer subjects: each repeat is shorter, so its runs see more similar background load.
    subjects: { type: "string", default: "direct,zc,zc-4MiB,naive,edgemesh,socat" },
  },
});
const seconds = Number(values.seconds);
const repeats = Number(values.repeats);

interface Run {
  gbps: number;
  cpuMsPerGiB: number | null;
  /** Every CPU of the machine (iperf3 both ends, proxy, softirq, and anything else running). */
  systemCpuMsPerGiB: number;
  /** iperf3's own CPU (its JSON cpu_utilization_percent) per GiB: sender and receiver ends. */
  senderCpuMsPerGiB: number;
  receiverCpuMsPerGiB: number;
}

/** Busy CPU seconds of the whole machine so far, from /proc/stat (all but idle and iowait). */
async function systemBusySeconds(): Promise<number> {
  const line = (await Bun.file("/proc/stat").text()).split("\n")[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f.reduce((a, b) => a + b, 0) - f[3]! - f[4]! - (f[8] ?? 0) - (f[9] ?? 0); // minus idle, iowait, guest (already in user)
  return busy / 100;
}

/** iperf3 for `seconds`; receiver Gbit/s and bytes, and the CPU the process `pid` spent meanwhile. */
async function iperf(port: number, pid: number | null): Promise<Run> {
  const c0 = pid === null ? 0 : await cpuSecondsOf(pid);
  const s0 = await systemBusySeconds();
  const child = spawnChild(["iperf3", "-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J"]);
  const code = await child.exited((seconds + 15) * 1000);
  const c1 = pid === null ? 0 : await cpuSecondsOf(pid);
  const s1 = await systemBusySeconds();
  const doc = JSON.parse(child.stdoutText() || "{}");
  const sum = doc?.end?.sum_received;
  if (code !== 0 || typeof sum?.bits_per_second !== "number") throw new Error(`iperf3 -p ${port}: exit ${code} ${doc?.error ?? child.stderrText()}`);
  const gib = sum.bytes / 2 ** 30;
  const util = doc.end.cpu_utilization_percent ?? {};
  const perGiB = (pct: number | undefined) => ((pct ?? 0) / 100) * sum.seconds * 1000 / gib;
  return {
    senderCpuMsPerGiB: perGiB(util.host_total),
    receiverCpuMsPerGiB: perGiB(util.remote_total), gbps: sum.bits_per_second / 1e9, cpuMsPerGiB: pid === null ? null : ((c1 - c0) * 1000) / gib, systemCpuMsPerGiB: ((s1 - s0) * 1000) / gib };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  const iperfPort = freePort();
  spawnChild(["iperf3", "-s", "-p", String(iperfPort)]);
  await waitTcp(iperfPort);

  const zc = spawnBun("./zerocopy-proxy.ts", ["--target", String(iperfPort), "--mode", "zc"]);
  const zcInfo = await zc.nextJson<{ pid: number; port: number }>();
  const zc4 = spawnBun("./zerocopy-proxy.ts", ["--target", String(iperfPort), "--mode", "zc", "--pipe", String(4 * 1024 * 1024)]);
  const zc4Info = await zc4.nextJson<{ pid: number; port: number }>();
  const naive = spawnBun("./zerocopy-proxy.ts", ["--target", String(iperfPort), "--mode", "naive"]);
  const naiveInfo = await naive.nextJson<{ pid: number; port: number }>();
  const em = spawnBun("./proxy-server.ts", ["--backend", `iperf=TCP:127.0.0.1:${iperfPort}`]);
  const emInfo = await em.nextJson<{ pid: number; listeners: Record<string, { port: number }> }>();
  const socatPort = freePort();
  const socat = spawnChild(["socat", "-b262144", `TCP-LISTEN:${socatPort},reuseaddr,fork,bind=127.0.0.1`, `TCP:127.0.0.1:${iperfPort}`]);
  await waitTcp(socatPort);

  const wanted = new Set(values.subjects.split(","));
  const all: { name: string; port: number; pid: number | null }[] = [
    { name: "direct", port: iperfPort, pid: null },
    { name: "zc", port: zcInfo.port, pid: zcInfo.pid },
    { name: "zc-4MiB", port: zc4Info.port, pid: zc4Info.pid },
    { name: "naive", port: naiveInfo.port, pid: naiveInfo.pid },
    { name: "edgemesh", port: emInfo.listeners.iperf!.port, pid: emInfo.pid },
    { name: "socat", port: socatPort, pid: socat.pid },
  ];
  const subjects = all.filter((s) => s.name === "direct" || wanted.has(s.name));
  const runs = new Map<string, Run[]>(subjects.map((s) => [s.name, []]));
  for (let r = 0; r < repeats; r++) {
    const line: string[] = [];
    for (const s of subjects) {
      const run = await iperf(s.port, s.pid);
      runs.get(s.name)!.push(run);
      line.push(`${s.name} ${run.gbps.toFixed(2)}/${run.cpuMsPerGiB === null ? "-" : run.cpuMsPerGiB.toFixed(0)}/${run.senderCpuMsPerGiB.toFixed(0)}/${run.receiverCpuMsPerGiB.toFixed(0)}/${run.systemCpuMsPerGiB.toFixed(0)}`);
    }
    console.error(`repeat ${r + 1}: ${line.join("  ")}  (Gbit/s / CPU-ms per GiB: proxy / iperf3 sender / iperf3 receiver / whole machine)`);
  }
  // Peak RSS over the whole run (the zc proxy's includes its Worker's JS heap).
  const peak = new Map<string, number>();
  for (const s of subjects) if (s.pid !== null) peak.set(s.name, (await memoryOf(s.pid)).peakMiB);
  const direct = median(runs.get("direct")!.map((x) => x.gbps));
  const table = subjects.map((s) => {
    const rs = runs.get(s.name)!;
    const gbps = median(rs.map((x) => x.gbps));
    const cpu = s.pid === null ? null : median(rs.map((x) => x.cpuMsPerGiB!));
    const sys = median(rs.map((x) => x.systemCpuMsPerGiB));
    const snd = median(rs.map((x) => x.senderCpuMsPerGiB));
    const rcv = median(rs.map((x) => x.receiverCpuMsPerGiB));
    return { name: s.name, gbps, ratio: gbps / direct, cpuMsPerGiB: cpu, senderCpuMsPerGiB: snd, receiverCpuMsPerGiB: rcv, systemCpuMsPerGiB: sys, peakRssMiB: peak.get(s.name) ?? null, runs: rs };
  });
  console.log("subject    Gbit/s  x direct  CPU-ms/GiB: proxy  sender  receiver  machine  peak RSS MiB");
  for (const t of table) {
    console.log(`${t.name.padEnd(10)} ${t.gbps.toFixed(2).padStart(6)}  ${t.ratio.toFixed(2).padStart(8)}  ${t.cpuMsPerGiB === null ? "-".padStart(17) : t.cpuMsPerGiB.toFixed(0).padStart(10)}  ${t.senderCpuMsPerGiB.toFixed(0).padStart(6)}  ${t.receiverCpuMsPerGiB.toFixed(0).padStart(8)}  ${t.systemCpuMsPerGiB.toFixed(0).padStart(7)}  ${t.peakRssMiB === null ? "-" : t.peakRssMiB.toFixed(1)}`);
  }
  if (values.json) await Bun.write(values.json, JSON.stringify({ seconds, repeats, table }, null, 2));
}

try {
  await main();
} finally {
  await stopAll();
}
