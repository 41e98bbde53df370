// Where a proxied request's time goes: the same wrk load (1 thread, 64 connections, 1 KiB POST,
// 1 KiB answer from the Bun backend) direct, through our proxy, HAProxy (mode tcp, nbthread 1) and
// nginx stream (one process), and per forwarding process:
//   perf stat -p PID (all threads): task-clock, context switches, CPU migrations, every syscall
//     entry (raw_syscalls:sys_enter), over a window inside a wrk run;   -> per request
//   strace -c -f -p PID over another wrk run: which syscalls (strace slows the process, so only
//     the mix per request is read from it, not the rate).
// Diagnosis, not a gate row: run it alone under `emlock bench`.
//   "ours" is the proxy as shipped (C flow loop), "ours-js" the same with small flows in JS.
//   bun bench/macro/per-request.ts [--seconds 5] [--rounds 2] [--no-strace] [--only ours,haproxy]

import { parseArgs } from "node:util";
import { wrk } from "./load.ts";
import { type Child, cpuSecondsOf, haveTool, spawnBun, spawnChild, stopAll } from "./procs.ts";
import { startReferences } from "./refs.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    "no-strace": { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);

interface Target {
  name: string;
  pid: number;
  port: number;
}

/**
 * Syscalls counted one by one (x86_64 numbers), each a raw_syscalls:sys_enter counter with an id
 * filter: cheap, no stop per call as with strace. (The per-syscall syscalls:sys_enter_* events
 * counted only part of the calls of a multi-threaded Bun process here, 2026-12-05.)
 */
const SYSCALLS: Record<string, number> = { recvfrom: 45, sendto: 44, read: 0, write: 1, writev: 20, epoll_wait: 232, epoll_pwait: 281, epoll_pwait2: 441, epoll_ctl: 233, futex: 202, madvise: 28, clock_gettime: 228, sched_yield: 24, setsockopt: 54, getsockopt: 55 };

interface PerfRow {
  rps: number;
  cpuUs: number;
  ctxSw: number;
  migrations: number;
  syscalls: number;
  procCpuUs: number;
  userUs: number;
  sysUs: number;
  voluntary: number;
  involuntary: number;
  [syscall: string]: number;
}

/** Sum of voluntary / involuntary context switches over every thread of pid. */
async function switches(pid: number): Promise<[number, number]> {
  let v = 0;
  let n = 0;
  for (const tid of await Array.fromAsync(new Bun.Glob("*").scan({ cwd: `/proc/${pid}/task`, onlyFiles: false }))) {
    const s = await Bun.file(`/proc/${pid}/task/${tid}/status`).text().catch(() => "");
    v += Number(s.match(/^voluntary_ctxt_switches:\s+(\d+)/m)?.[1] ?? 0);
    n += Number(s.match(/^nonvoluntary_ctxt_switches:\s+(\d+)/m)?.[1] ?? 0);
  }
  return [v, n];
}

/** User and system CPU seconds of pid (all threads) from /proc/PID/stat. */
async function userSys(pid: number): Promise<[number, number]> {
  const f = (await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ");
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

/** perf stat over a window inside one wrk run; per-request figures. */
async function perfRun(t: Target): Promise<PerfRow> {
  const load = wrk(t.port, SECONDS);
  await Bun.sleep(500);
  const window = SECONDS - 1.5;
  const c0 = await cpuSecondsOf(t.pid);
  const [u0, s0] = await userSys(t.pid);
  const [v0, n0] = await switches(t.pid);
  const filtered = Object.values(SYSCALLS).flatMap((id) => ["-e", "raw_syscalls:sys_enter", "--filter", `id == ${id}`]);
  const perf = spawnChild(["perf", "stat", "-x", ",", "-e", "task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter", ...filtered, "-p", String(t.pid), "--", "sleep", String(window)]);
  await perf.exited((window + 10) * 1000);
  const c1 = await cpuSecondsOf(t.pid);
  const [u1, s1] = await userSys(t.pid);
  const [v1, n1] = await switches(t.pid);
  const run = await load;
  if (process.env.PER_REQUEST_DEBUG) console.error(perf.stderrText());
  const requests = run.rps * window;
  const lines = perf.stderrText().split("\n").filter((l) => l.split(",").length > 3);
  const counter = (event: string, nth = 0) => {
    const line = lines.filter((l) => l.split(",")[2] === event)[nth];
    if (!line) throw new Error(`perf stat: no ${event} in ${perf.stderrText().slice(-400)}`);
    return Number(line.split(",")[0]);
  };
  const each: Record<string, number> = {};
  // The filtered counters follow the unfiltered one, in SYSCALLS order.
  for (const [i, c] of Object.keys(SYSCALLS).entries()) {
    const n = counter("raw_syscalls:sys_enter", i + 1) / requests;
    if (n > 0.0005) each[c] = n;
  }
  return {
    ...each,
    rps: run.rps,
    cpuUs: (counter("task-clock") * 1000) / requests, // task-clock is in ms
    ctxSw: counter("context-switches") / requests,
    migrations: counter("cpu-migrations") / requests,
    syscalls: counter("raw_syscalls:sys_enter") / requests,
    procCpuUs: ((c1 - c0) * 1e6) / requests,
    userUs: ((u1 - u0) * 1e6) / requests,
    sysUs: ((s1 - s0) * 1e6) / requests,
    voluntary: (v1 - v0) / requests,
    involuntary: (n1 - n0) / requests,
  };
}

/** strace -c over one wrk run: calls per request by syscall name. */
async function straceRun(t: Target): Promise<{ rps: number; calls: Record<string, number> }> {
  const st = spawnChild(["strace", "-c", "-f", "-p", String(t.pid)]);
  await Bun.sleep(500);
  const run = await wrk(t.port, SECONDS);
  st.proc.kill("SIGINT");
  await st.exited(10_000);
  const requests = run.rps * SECONDS;
  const calls: Record<string, number> = {};
  for (const line of st.stderrText().split("\n")) {
    // % time, seconds, usecs/call, calls, [errors], syscall
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^[\d.]+$/.test(f[0]!) || f.at(-1) === "total") continue;
    calls[f.at(-1)!] = Number(f[3]) / requests;
  }
  return { rps: run.rps, calls };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  for (const tool of ["wrk", "perf", ...(values["no-strace"] ? [] : ["strace"])]) if (!haveTool(tool)) throw new Error(`${tool} not installed`);
  const http = spawnBun("./http-backend.ts");
  const httpPort = (await http.nextJson<{ port: number }>()).port;
  const proxy: Child = spawnBun("./proxy-server.ts", ["--impl", "edgemesh", "--backend", `http=TCP:127.0.0.1:${httpPort}`]);
  const hello = await proxy.nextJson<{ listeners: Record<string, { port: number }> }>(20_000);
  // The same proxy with the JS path for small flows (the engine before the C flow loop).
  const proxyJs: Child = spawnBun("./proxy-server.ts", ["--impl", "edgemesh", "--engine", "js", "--backend", `http=TCP:127.0.0.1:${httpPort}`]);
  const helloJs = await proxyJs.nextJson<{ listeners: Record<string, { port: number }> }>(20_000);
  const refs = await startReferences({ http: httpPort });
  try {
    let targets: Target[] = [
      { name: "direct (the Bun backend)", pid: http.pid, port: httpPort },
      { name: "ours", pid: proxy.pid, port: hello.listeners.http!.port },
      { name: "ours-js", pid: proxyJs.pid, port: helloJs.listeners.http!.port },
      ...refs.refs.map((r) => ({ name: r.name, pid: r.child.pid, port: r.ports.http! })),
    ];
    if (values.only) targets = targets.filter((t) => values.only!.split(",").some((o) => t.name.startsWith(o)));
    for (const t of targets) await wrk(t.port, 1); // warm-up
    const perf = new Map<string, PerfRow[]>(targets.map((t) => [t.name, []]));
    for (let r = 0; r < ROUNDS; r++) for (const t of targets) perf.get(t.name)!.push(await perfRun(t));
    const out: Record<string, unknown> = {};
    for (const t of targets) {
      const rows = perf.get(t.name)!;
      const m: Record<string, number> = {};
      const keys = new Set(rows.flatMap((x) => Object.keys(x)));
      for (const k of keys) m[k] = Number(median(rows.map((x) => x[k] ?? 0)).toPrecision(4));
      out[t.name] = { perf: m, rounds: rows.map((x) => Math.round(x.rps)) };
      console.error(`${t.name}: ${JSON.stringify(m)}`);
    }
    if (!values["no-strace"])
      for (const t of targets) {
        const s = await straceRun(t);
        const top = Object.entries(s.calls).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Number(v.toPrecision(3))]);
        (out[t.name] as Record<string, unknown>).strace = { rps: Math.round(s.rps), perRequest: Object.fromEntries(top) };
        console.error(`${t.name} strace (${Math.round(s.rps)} req/s under strace): ${JSON.stringify(Object.fromEntries(top))}`);
      }
    console.log(JSON.stringify(out, null, 1));
  } finally {
    await refs.stop();
    await stopAll();
  }
}

await main();
