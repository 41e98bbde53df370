// Where a request through the tunnel spends its CPU: the tunnel bench's 64-connection 1 KiB
// request/response load (wrk) through agent A -> libp2p tunnel (TCP, PSK or not) -> agent B ->
// the Bun backend, against the backend directly, with each agent's user and system CPU
// microseconds per request (from /proc/PID/stat over the wrk run), and optionally a JSC CPU
// profile of both agents (--profile DIR: Bun's --cpu-prof-md, written when the agents stop).
// Diagnosis, not a gate row: run it alone under `emlock bench`.
//   bun bench/tunnel-per-request.ts [--psk 0|1] [--seconds 4] [--rounds 2] [--profile DIR]

import { parseArgs } from "node:util";
import { wrk } from "./macro/load.ts";
import { freePort, spawnBun, spawnChild, stopAll, waitTcp } from "./macro/procs.ts";

const { values } = parseArgs({
  options: {
    psk: { type: "string", default: "1" },
    seconds: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    profile: { type: "string" },
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
  const b = spawnChild([process.execPath, ...prof, AGENT, ...common, "--node", "node-b"]);
  const infoB = await b.nextJson<unknown>(20_000);
  const a = spawnChild([process.execPath, ...prof, AGENT, ...common, "--node", "node-a", "--peer", JSON.stringify(infoB)]);
  const entry = await a.nextJson<{ ports: { http: number } }>(20_000);
  await (await fetch(`http://127.0.0.1:${entry.ports.http}/`, { method: "POST", body: "warm" })).arrayBuffer();
  await wrk(entry.ports.http, 3); // JIT tiers and buffers warm, as in tunnel-bench
  for (let round = 0; round < Number(values.rounds); round++) {
    const direct = await wrk(httpPort, SECONDS);
    const pids = [a.pid, b.pid, http.pid];
    const before = await Promise.all(pids.map(userSys));
    const w = await wrk(entry.ports.http, SECONDS);
    const after = await Promise.all(pids.map(userSys));
    const n = w.rps * SECONDS;
    const per = (i: number, k: 0 | 1) => Number((((after[i]![k] - before[i]![k]) / n) * 1e6).toFixed(1));
    console.log(JSON.stringify({
      direct_rps: Math.round(direct.rps),
      tunnel_rps: Math.round(w.rps),
      ratio: Number((w.rps / direct.rps).toFixed(3)),
      us_per_request: { a_user: per(0, 0), a_sys: per(0, 1), b_user: per(1, 0), b_sys: per(1, 1), backend: Number((per(2, 0) + per(2, 1)).toFixed(1)) },
    }));
  }
} finally {
  await stopAll();
}
