// Where a request through the tunnel spends its CPU: the tunnel bench's 64-connection 1 KiB
// request/response load (wrk) through agent A -> libp2p tunnel (TCP, PSK or not) -> agent B ->
// the Bun backend, against the backend directly, with each agent's user and system CPU
// microseconds per request (from /proc/PID/stat over the wrk run), and optionally a JSC CPU
// profile of both agents (--profile DIR: Bun's --cpu-prof-md, written when the agents stop).
// Diagnosis, not a gate row: run it alone under `emlock bench`.
//   bun bench/tunnel-per-request.ts [--psk 0|1] [--seconds 4] [--rounds 2] [--profile DIR]
//       [--syscalls] [--perf DIR] [--ab OTHER/bench/tunnel-bench.ts]
// --ab: a second pair of agents from another checkout (e.g. main), measured in the same rounds
// right after this tree's pair, so a before/after comparison shares the machine state.

import { parseArgs } from "node:util";
import { wrk } from "./macro/load.ts";
import { freePort, spawnBun, spawnChild, stopAll, waitTcp } from "./macro/procs.ts";

const { values } = parseArgs({
  options: {
    psk: { type: "string", default: "1" },
    seconds: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    profile: { type: "string" },
    syscalls: { type: "boolean", default: false },
    perf: { type: "string" },
    ab: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const AGENT = new URL("./tunnel-bench.ts", import.meta.url).pathname;
const TICK = 100; // USER_HZ

/** [user, system] CPU seconds of pid (all threads). */
async function userSys(pid: number): Promise<[number, number]> {
  const f = (await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ");
  return [Number(f[11]) / TICK, Number(f[12]) / TICK];
}

try {
  const iperf = freePort();
  spawnChild(["iperf3", "-s", "-p", String(iperf)]);
  await waitTcp(iperf);
  const http = spawnBun("./http-backend.ts");
  const httpPort = (await http.nextJson<{ port: number }>()).port;
  const prof = values.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${values.profile}`, "--cpu-prof-interval=200"] : [];
  const common = ["--role", "agent", "--psk", values.psk!, "--transport", "tcp", "--iperf", String(iperf), "--http", String(httpPort)];
  const startPair = async (script: string) => {
    const b = spawnChild([process.execPath, ...prof, script, ...common, "--node", "node-b"]);
    const infoB = await b.nextJson<unknown>(20_000);
    const a = spawnChild([process.execPath, ...prof, script, ...common, "--node", "node-a", "--peer", JSON.stringify(infoB)]);
    const entry = await a.nextJson<{ ports: { http: number } }>(20_000);
    await (await fetch(`http://127.0.0.1:${entry.ports.http}/`, { method: "POST", body: "warm" })).arrayBuffer();
    await wrk(entry.ports.http, 3); // JIT tiers and buffers warm, as in tunnel-bench
    return { a, b, entry };
  };
  const pairs = [{ name: "this", ...(await startPair(AGENT)) }];
  if (values.ab) pairs.push({ name: "other", ...(await startPair(values.ab)) });
  for (let round = 0; round < Number(values.rounds); round++) {
    const direct = await wrk(httpPort, SECONDS);
    for (const { name: tree, a, b, entry } of pairs) {
      const pids = [a.pid, b.pid, http.pid];
      // --syscalls: syscall counts per request of both agents during the load (perf stat tracepoints):
      // socket writes and reads per request under concurrency.
      const EVENTS = ["sendto", "recvfrom", "write", "writev", "read", "epoll_pwait2", "epoll_wait"].map((c) => `syscalls:sys_enter_${c}`);
      const tracers = values.syscalls ? [a.pid, b.pid].map((pid) => Bun.spawn(["perf", "stat", "-x", ",", "-o", `/tmp/perfstat-${pid}.txt`, "-e", EVENTS.join(","), "-p", String(pid)], { stderr: "ignore" })) : [];
      // --perf DIR: perf record (no call graphs) of each agent during the load, DIR/a.data, DIR/b.data.
      if (values.perf) for (const [name, pid] of [["a", a.pid], ["b", b.pid]] as const) tracers.push(Bun.spawn(["perf", "record", "-q", "-o", `${values.perf}/${name}.data`, "-p", String(pid)], { stderr: "ignore" }));
      if (tracers.length > 0) await Bun.sleep(300);
      const before = await Promise.all(pids.map(userSys));
      const w = await wrk(entry.ports.http, SECONDS);
      const after = await Promise.all(pids.map(userSys));
      const n = w.rps * SECONDS;
      for (const t of tracers) t.kill("SIGINT");
      await Promise.all(tracers.map((t) => t.exited));
      if (values.syscalls) {
        for (const [name, pid] of [["a", a.pid], ["b", b.pid]] as const) {
          const per: Record<string, number> = {};
          for (const l of (await Bun.file(`/tmp/perfstat-${pid}.txt`).text()).split("\n")) {
            const f = l.split(",");
            if (f.length > 3 && f[2]!.startsWith("syscalls:")) per[f[2]!.replace("syscalls:sys_enter_", "")] = Number((Number(f[0]) / n).toFixed(3));
          }
          console.log(JSON.stringify({ tree, agent: name, syscalls_per_request: per }));
        }
      }
      const per = (i: number, k: 0 | 1) => Number((((after[i]![k] - before[i]![k]) / n) * 1e6).toFixed(1));
      console.log(JSON.stringify({
        tree,
        direct_rps: Math.round(direct.rps),
        tunnel_rps: Math.round(w.rps),
        ratio: Number((w.rps / direct.rps).toFixed(3)),
        us_per_request: { a_user: per(0, 0), a_sys: per(0, 1), b_user: per(1, 0), b_sys: per(1, 1), backend: Number((per(2, 0) + per(2, 1)).toFixed(1)) },
      }));
    }
  }
} finally {
  await stopAll();
}
