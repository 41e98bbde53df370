// Profiling aid for the Edge CNI (not part of the gate): two agents on one LAN (PSK, one segment
// each, so pod traffic takes the CNI path), a bulk iperf3 (or LOAD=wrk: 64-connection HTTP) from a
// pod on n1 to one on n2 for SECS seconds (default 6) after a 2 s warm-up, and during it:
//   MODE=perf    perf stat on both agents for 3 s (/tmp/cniprof/perf-stat.txt)
//   MODE=record  perf record -a -g (cpu-clock) for 3 s (/tmp/cniprof/perf.data)
//   MODE=strace  strace -c -f on each agent for 3 s (/tmp/cniprof/strace-n*.txt)
// Prints the CNI metrics before/after, Gbit/s, both agents' CPU (cores and s/GB), the machine's
// busy share and the agents' RSS. Run under `emlock bench`; MIMALLOC_* etc. in the environment
// reach the agents. Used for the profile in /work/notes/cni-perf.md (issue 14).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nodeYaml } from "../test/support/cni/nodes.ts";
import type { NodeSpec } from "../test/support/netns.ts";
import { createCluster, until } from "../test/e2e/harness.ts";

const SERVER = "10.244.2.10";
const CLIENT = "10.244.1.100";
const secs = Number(process.env.SECS ?? 6);
const nodes: NodeSpec[] = [
  { name: "n1", lan: "lan", ip: "10.10.0.11", podCidr: "10.244.1.0/24" },
  { name: "n2", lan: "lan", ip: "10.10.0.12", podCidr: "10.244.2.0/24" },
];
const c = await createCluster({ lans: [{ name: "lan", cidr: "10.10.0.0/24" }], nodes });
try {
  for (const n of nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
  const server = await c.node("n2").addPod("server", SERVER);
  const client = await c.node("n1").addPod("client", CLIENT);
  const iperfServer = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER, "-p", "5201"]);
  await iperfServer.waitFor(/Server listening/);
  const psk = join(c.dir, "psk");
  writeFileSync(psk, "edgemesh-cni-bench\n");
  const opts = { tunnel: { psk }, cni: { edgeCIDR: nodes.map((n) => n.podCidr) } };
  const a1 = await c.startAgent("n1", opts);
  const a2 = await c.startAgent("n2", opts);
  await until(async () => (await client.exec(["ping", "-c", "1", "-W", "1", SERVER])).stdout.includes("1 received"), 30_000, 200);
  await client.must(["iperf3", "-c", SERVER, "-t", "2"], { timeoutMs: 30_000 });
  const metrics = async (n: string) => (await c.node(n).must(["curl", "-s", "http://127.0.0.1:10551/metrics"])).stdout.split("\n").filter((l) => /cni_(tun|tx|rx)|cni_drop/.test(l) && !l.startsWith("#")).join("\n");
  console.log("before\n" + (await metrics("n1")) + "\n" + (await metrics("n2")));
  const mode = process.env.MODE ?? "plain";
  const wrk = process.env.LOAD === "wrk";
  if (wrk) await c.startApp(server);
  const bg = wrk ? client.must(["wrk", "-t2", "-c64", `-d${secs}s`, `http://${SERVER}:8080/`], { timeoutMs: 60_000 }) : client.must(["iperf3", "-c", SERVER, "-t", String(secs), "-J"], { timeoutMs: 60_000 });
  const p1 = a1.proc.proc.pid, p2 = a2.proc.proc.pid;
  const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
  const sys = () => readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const t0 = performance.now(), c1 = cpu(p1), c2 = cpu(p2), s0 = sys();
  await Bun.sleep(1000);
  if (mode === "strace") {
    const s = (pid: number, f: string) => Bun.spawn(["timeout", "-s", "INT", "3", "strace", "-c", "-f", "-o", f, "-p", String(pid)]).exited;
    await Promise.all([s(p1, "/tmp/cniprof/strace-n1.txt"), s(p2, "/tmp/cniprof/strace-n2.txt")]);
  } else if (mode === "perf") {
    await Bun.spawn(["perf", "stat", "-o", "/tmp/cniprof/perf-stat.txt", "-p", `${p1},${p2}`, "--", "sleep", "3"]).exited;
  } else if (mode === "record") {
    await Bun.spawn(["perf", "record", "-e", "cpu-clock", "-a", "-g", "-o", "/tmp/cniprof/perf.data", "--", "sleep", "3"], { stdout: "ignore", stderr: "ignore" }).exited;
  }
  const out = (await bg).stdout;
  const r = wrk ? { bytes: 1e9, bits_per_second: 0 } : JSON.parse(out).end.sum_received;
  if (wrk) console.log("rps", out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const dt = performance.now() - t0, s1 = sys();
  const busy = (a: number[]) => a.reduce((x, y) => x + y, 0) - a[3]! - a[4]!;
  const tot = (a: number[]) => a.reduce((x, y) => x + y, 0);
  console.log(`s/GB ${(((cpu(p1) - c1) + (cpu(p2) - c2)) / 1000 / (r.bytes / 1e9)).toFixed(1)} (includes the first second)`);
  console.log(`cpu n1 ${((cpu(p1) - c1) / dt).toFixed(2)} n2 ${((cpu(p2) - c2) / dt).toFixed(2)} cores; machine busy ${((busy(s1) - busy(s0)) / (tot(s1) - tot(s0)) * 100).toFixed(0)}%`);
  console.log("gbps", r.bits_per_second / 1e9);
  console.log("after\n" + (await metrics("n1")) + "\n" + (await metrics("n2")));
  const rss = (pid: number) => readFileSync(`/proc/${pid}/status`, "utf8").split("\n").filter((l) => /VmRSS|VmHWM/.test(l)).join(" ").replace(/\s+/g, " ");
  console.log("rss n1", rss(p1), "n2", rss(p2));
  await Bun.sleep(3000);
  console.log("rss +3s n1", rss(p1), "n2", rss(p2));
  await Promise.all([a1.proc.kill("SIGTERM"), a2.proc.kill("SIGTERM")]);
} finally {
  await c.destroy();
}
