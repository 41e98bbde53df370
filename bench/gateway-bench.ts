// Edge gateway benchmark: the real `edgemesh gateway` process (manifest folder, nic lo) against
// nginx as a reverse proxy doing the same routing to the same backend, in the same run, on
// loopback. nginx runs one process (master_process off: one worker), upstream keepalive, HTTP/1.1
// upstream, the same X-Forwarded-For/-Proto and Host headers the gateway sends, access log off,
// the same ECDSA certificate. Repeats interleave gateway and nginx; medians are reported.
//
//   HTTP keep-alive     wrk -t1 -c64, 1 KiB POST each way: req/s, CPU per request, p50, p99
//                                                                          gateway / nginx
//   HTTP short          wrk -t1 -c32 with Connection: close (one request per connection)
//   HTTPS handshakes    wrk -t1 -c32 https with Connection: close (a full handshake per request)
//   HTTPS keep-alive    wrk -t1 -c64 https
//   TCP bulk            iperf3 through a gateway TCP route                  gateway / direct
//   RSS                 the gateway's VmRSS 1 s after start and after all of the above
//
// Routing on both: three routes tried in order (/static, /api, then everything), Host any.
// Prints one JSON array of results (bench/check.ts turns it into gate rows). --short (CI, a few
// seconds): HTTP keep-alive, short connections and HTTPS keep-alive, 3 repeats of 1 s each.
//
//   bun bench/gateway-bench.ts [--short] [--seconds S] [--repeats N] [--only keepalive,short,...]
//                              [--main path/to/src/main/index.ts]
//
// --per-request (diagnosis, not gate rows; run it alone under `emlock bench`): for keep-alive and
// short connections, gateway and nginx, perf stat -p over a window inside a wrk run (task-clock,
// context switches, every syscall entry and the common ones by id), the user/system split from
// /proc, and with --strace the syscall mix from strace -c (which slows the process: mix only).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { iperf3 } from "./macro/load.ts";
import { cpuSecondsOf, freePort, haveTool, memoryOf, spawnBun, spawnChild, stopAll, waitTcp, type Child } from "./macro/procs.ts";

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    seconds: { type: "string" },
    repeats: { type: "string" },
    "per-request": { type: "boolean", default: false },
    strace: { type: "boolean", default: false },
    record: { type: "string" },
    hold: { type: "string" },
    main: { type: "string" },
    only: { type: "string" },
  },
});
const SECONDS = Number(args.seconds ?? (args.short ? 1 : 5));
const REPEATS = Number(args.repeats ?? (args.short ? 3 : 5));
/** The edgemesh entry to run (--main: another build or checkout, to compare two versions). */
const MAIN = args.main ?? new URL("../src/main/index.ts", import.meta.url).pathname;
const LUA = new URL("./macro/wrk-post-1k.lua", import.meta.url).pathname;

interface Row {
  name: string;
  unit: string;
  value: number | null;
  ratio?: number | null;
  reference?: { name: string; value: number };
  runs?: number[];
  note?: string;
  error?: string;
  notMeasured?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number, d = 3) => Number(x.toFixed(d));

interface Load {
  rps: number;
  /** wrk --latency percentiles, ms. */
  p50: number;
  p99: number;
  /** CPU microseconds the proxy process (the `pid` given) spent per request; NaN without one. */
  cpuUs: number;
}

const ms = (v: string, unit: string) => Number(v) * (unit === "us" ? 0.001 : unit === "s" ? 1000 : 1);

/** wrk against a URL (non-2xx or socket errors beyond 1% fail the measurement). */
async function wrk(url: string, seconds: number, connections: number, extra: string[] = [], pid?: number): Promise<Load> {
  const cpu0 = pid !== undefined ? await cpuSecondsOf(pid) : NaN;
  const child = spawnChild(["wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "2s", "--latency", "-s", LUA, ...extra, url]);
  const code = await child.exited((seconds + 20) * 1000);
  const text = child.stdoutText();
  const m = text.match(/Requests\/sec:\s+([\d.]+)/);
  const p50 = text.match(/^\s+50%\s+([\d.]+)(us|ms|s)\b/m);
  const p99 = text.match(/^\s+99%\s+([\d.]+)(us|ms|s)\b/m);
  const total = Number(text.match(/(\d+) requests in/)?.[1] ?? 0);
  const errors = [...text.matchAll(/(?:connect|read|write|timeout) (\d+)/g)].reduce((n, x) => n + Number(x[1]), 0) + Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  if (code !== 0 || !m || !p50 || !p99) throw new Error(`wrk ${url}: exit ${code}: ${text.slice(-300)} ${child.stderrText().slice(-200)}`);
  if (errors > Math.max(10, total * 0.01)) throw new Error(`wrk ${url}: ${errors} errors in ${total} requests: ${text.split("\n").filter((l) => /errors|Non-2xx/.test(l)).join("; ")}`);
  const cpu = pid !== undefined ? (await cpuSecondsOf(pid)) - cpu0 : NaN;
  return { rps: Number(m[1]), p50: ms(p50[1]!, p50[2]!), p99: ms(p99[1]!, p99[2]!), cpuUs: total > 0 ? (cpu * 1e6) / total : NaN };
}

function openssl(dir: string, argv: string[]): void {
  const r = Bun.spawnSync(["openssl", ...argv], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${argv[0]}: ${r.stderr.toString()}`);
}

interface Setup {
  dir: string;
  gateway: Child;
  nginx: Child;
  backendPort: number;
  backendPid: number;
  iperfPort: number;
  gw: { http: number; https: number; tcp: number };
  ng: { http: number; https: number };
}

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-gwbench-"));
  mkdirSync(join(dir, "manifests"));
  mkdirSync(join(dir, "nginx"));
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tls.key", "-out", "tls.crt", "-days", "2", "-subj", "/CN=bench.local", "-addext", "subjectAltName=DNS:bench.local,IP:127.0.0.1"]);
  const cert = await Bun.file(join(dir, "tls.crt")).text();
  const key = await Bun.file(join(dir, "tls.key")).text();

  const backend = spawnBun("./http-backend.ts");
  const backendPort = (await backend.nextJson<{ port: number }>(10_000)).port;
  const iperfPort = freePort();
  spawnChild(["iperf3", "-s", "-p", String(iperfPort)]);
  await waitTcp(iperfPort);
  const gw = { http: freePort(), https: freePort(), tcp: freePort() };
  const ng = { http: freePort(), https: freePort() };

  const svc = (name: string, port: number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: bench }
spec:
  clusterIP: 10.96.9.${name === "backend" ? 1 : 2}
  ports: [{ name: p, port: 80, protocol: TCP, targetPort: p }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: bench, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: p, port: ${port}, protocol: TCP }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true }, nodeName: bench }]
---
`;
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  writeFileSync(
    join(dir, "manifests", "bench.yaml"),
    `${svc("backend", backendPort)}${svc("iperf", iperfPort)}apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: { name: bench-tls, namespace: bench }
data: { tls.crt: ${b64(cert)}, tls.key: ${b64(key)} }
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: bench }
spec:
  servers:
    - { port: { number: ${gw.http}, name: http, protocol: HTTP }, hosts: ["*"] }
    - { port: { number: ${gw.https}, name: https, protocol: HTTPS }, hosts: ["*"], tls: { mode: SIMPLE, credentialName: bench-tls } }
    - { port: { number: ${gw.tcp}, name: tcp, protocol: TCP }, hosts: ["*"] }
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: routes, namespace: bench }
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
    - { match: [{ uri: { prefix: /static } }], route: [{ destination: { host: iperf } }] }
    - { match: [{ uri: { prefix: /api } }], route: [{ destination: { host: backend } }] }
    - { route: [{ destination: { host: backend } }] }
  tcp:
    - { route: [{ destination: { host: iperf } }] }
`,
  );
  const config = join(dir, "edgemesh-gateway.yaml");
  writeFileSync(
    config,
    `kubeAPIConfig: { manifestDir: ${join(dir, "manifests")} }
commonConfig: { stateDir: ${join(dir, "state")}, adminAddress: "127.0.0.1:${freePort()}" }
modules:
  edgeGateway: { enable: true, nic: lo, includeIP: 127.0.0.1 }
  edgeTunnel: { enable: false }
`,
  );
  // GWBENCH_BUN_ARGS: extra bun flags for the gateway (diagnosis: "--cpu-prof --cpu-prof-md --cpu-prof-dir=DIR").
  const bunArgs = (process.env.GWBENCH_BUN_ARGS ?? "").split(" ").filter((x) => x !== "");
  const gateway = spawnChild([process.execPath, ...bunArgs, MAIN, "gateway", "--config", config, "--log-level", "warn"], { env: { NODE_NAME: "bench" } });

  const ngConf = join(dir, "nginx", "nginx.conf");
  writeFileSync(
    ngConf,
    `daemon off;
master_process off;
worker_processes 1;
error_log ${join(dir, "nginx", "error.log")} warn;
pid ${join(dir, "nginx", "nginx.pid")};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, "nginx")};
  proxy_temp_path ${join(dir, "nginx")};
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 128; }
  upstream other { server 127.0.0.1:${iperfPort}; keepalive 16; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_buffering on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${ng.http};
    listen 127.0.0.1:${ng.https} ssl;
    ssl_certificate ${join(dir, "tls.crt")};
    ssl_certificate_key ${join(dir, "tls.key")};
    ssl_protocols TLSv1.2 TLSv1.3;
    location /static { proxy_pass http://other; }
    location /api { proxy_pass http://backend; }
    location / { proxy_pass http://backend; }
  }
}
`,
  );
  const nginx = spawnChild(["nginx", "-c", ngConf, "-p", join(dir, "nginx")]);
  await Promise.all([waitTcp(gw.http, 20_000), waitTcp(gw.https, 20_000), waitTcp(gw.tcp, 20_000), waitTcp(ng.http), waitTcp(ng.https)]);
  return { dir, gateway, nginx, backendPort, backendPid: backend.pid, iperfPort, gw, ng };
}

/**
 * Gateway vs nginx for one load, interleaved (gateway, nginx, gateway, ...). The rate row's ratio
 * is gateway / nginx; with `latency`, p50 and p99 rows too, ratio nginx / gateway (higher is
 * better), medians over the repeats.
 */
async function versus(name: string, unit: string, load: (which: "gateway" | "nginx") => Promise<Load>, note: string, latency = false): Promise<Row[]> {
  const g: Load[] = [];
  const n: Load[] = [];
  for (let i = 0; i < REPEATS; i++) {
    g.push(await load("gateway"));
    n.push(await load("nginx"));
    if (process.env.GWBENCH_DEBUG) console.error(`${name} #${i}: gateway ${g[i]!.rps} (${g[i]!.cpuUs.toFixed(1)} us), nginx ${n[i]!.rps} (${n[i]!.cpuUs.toFixed(1)} us)`);
  }
  const row = (suffix: string, unit: string, pick: (l: Load) => number, higherBetter: boolean, note: string): Row => {
    const ratios = g.map((x, i) => (higherBetter ? pick(x) / pick(n[i]!) : pick(n[i]!) / pick(x)));
    return {
      name: name + suffix,
      unit,
      value: round(median(g.map(pick)), unit === "req/s" || unit === "conn/s" ? 0 : 3),
      reference: { name: "nginx", value: round(median(n.map(pick)), unit === "req/s" || unit === "conn/s" ? 0 : 3) },
      ratio: round(median(ratios)),
      runs: ratios.map((r) => round(r)),
      note,
    };
  };
  const rows = [row("", unit, (l) => l.rps, true, note)];
  if (latency) {
    rows.push(row(".cpu_per_request", "us/req", (l) => l.cpuUs, false, "CPU time of the proxy process per request (all its threads, /proc/PID/stat), in the same wrk runs; ratio nginx / gateway. The steadiest of these numbers on a loaded machine: contention moves rates and latencies of both, CPU per request far less"));
    rows.push(row(".p50", "ms", (l) => l.p50, false, "median request latency in the same wrk runs; ratio nginx / gateway"));
    rows.push(row(".p99", "ms", (l) => l.p99, false, "99th percentile latency in the same wrk runs; ratio nginx / gateway"));
  }
  return rows;
}

/** Syscalls counted one by one (x86_64 numbers), as bench/macro/per-request.ts does. */
const SYSCALLS: Record<string, number> = { read: 0, write: 1, close: 3, writev: 20, sched_yield: 24, madvise: 28, accept: 43, sendto: 44, recvfrom: 45, shutdown: 48, setsockopt: 54, getsockopt: 55, futex: 202, clock_gettime: 228, epoll_wait: 232, epoll_ctl: 233, accept4: 288, epoll_pwait: 281, epoll_pwait2: 441, getsockname: 51, getpeername: 52, ioctl: 16, fcntl: 72 };

/** User and system CPU seconds of pid (all threads) from /proc/PID/stat. */
async function userSys(pid: number): Promise<[number, number]> {
  const f = (await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ");
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

/** perf stat over a window inside one wrk run of `seconds`; per-request figures. */
async function perRequest(url: string, pid: number, connections: number, extra: string[], seconds: number, backendPid: number): Promise<Record<string, number>> {
  const load = wrk(url, seconds, connections, extra);
  await Bun.sleep(500);
  const window = seconds - 1.5;
  const [u0, s0] = await userSys(pid);
  const [bu0, bs0] = await userSys(backendPid);
  const filtered = Object.values(SYSCALLS).flatMap((id) => ["-e", "raw_syscalls:sys_enter", "--filter", `id == ${id}`]);
  const perf = spawnChild(["perf", "stat", "-x", ",", "-e", "task-clock,context-switches,page-faults,raw_syscalls:sys_enter", ...filtered, "-p", String(pid), "--", "sleep", String(window)]);
  await perf.exited((window + 10) * 1000);
  const [u1, s1] = await userSys(pid);
  const [bu1, bs1] = await userSys(backendPid);
  const run = await load;
  const requests = run.rps * window;
  const lines = perf.stderrText().split("\n").filter((l) => l.split(",").length > 3);
  const counter = (event: string, nth = 0) => {
    const line = lines.filter((l) => l.split(",")[2] === event)[nth];
    if (!line) throw new Error(`perf stat: no ${event} in ${perf.stderrText().slice(-400)}`);
    return Number(line.split(",")[0]);
  };
  const out: Record<string, number> = {
    rps: Math.round(run.rps),
    cpuUs: round((counter("task-clock") * 1000) / requests, 2),
    userUs: round(((u1 - u0) * 1e6) / requests, 2),
    sysUs: round(((s1 - s0) * 1e6) / requests, 2),
    // The backend's CPU per request behind this proxy (the same backend serves both).
    backendUs: round(((bu1 - bu0 + bs1 - bs0) * 1e6) / requests, 2),
    ctxSw: round(counter("context-switches") / requests),
    faults: round(counter("page-faults") / requests),
    syscalls: round(counter("raw_syscalls:sys_enter") / requests),
  };
  for (const [i, c] of Object.keys(SYSCALLS).entries()) {
    const n = counter("raw_syscalls:sys_enter", i + 1) / requests;
    if (n > 0.005) out[c] = round(n);
  }
  return out;
}

/** strace -c over one wrk run: calls per request by syscall name (the rate under strace is not the real one). */
async function straceMix(url: string, pid: number, connections: number, extra: string[], seconds: number): Promise<Record<string, number>> {
  const st = spawnChild(["strace", "-c", "-f", "-p", String(pid)]);
  await Bun.sleep(500);
  const run = await wrk(url, seconds, connections, extra);
  st.proc.kill("SIGINT");
  await st.exited(10_000);
  const requests = run.rps * seconds;
  const calls: Record<string, number> = {};
  for (const line of st.stderrText().split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^[\d.]+$/.test(f[0]!) || f.at(-1) === "total") continue;
    const n = Number(f[3]) / requests;
    if (n > 0.005) calls[f.at(-1)!] = round(n);
  }
  return calls;
}

async function perRequestMain(s: Setup): Promise<unknown> {
  const seconds = Number(args.seconds ?? 5);
  const rounds = Number(args.repeats ?? 2);
  const out: Record<string, unknown> = {};
  const close = ["-H", "Connection: close"];
  const loads = [
    { load: "keepalive", connections: 64, extra: [] as string[] },
    { load: "short", connections: 32, extra: close },
  ];
  const who = [
    { name: "gateway", pid: s.gateway.pid, port: s.gw.http },
    { name: "nginx", pid: s.nginx.pid, port: s.ng.http },
  ];
  for (const w of who) await wrk(`http://127.0.0.1:${w.port}/`, 1, 64);
  for (const l of loads) {
    for (const w of who) {
      const rows: Record<string, number>[] = [];
      for (let r = 0; r < rounds; r++) rows.push(await perRequest(`http://127.0.0.1:${w.port}/`, w.pid, l.connections, l.extra, seconds, s.backendPid));
      const m: Record<string, number> = {};
      for (const k of new Set(rows.flatMap((x) => Object.keys(x)))) m[k] = round(median(rows.map((x) => x[k] ?? 0)), 3);
      const entry: Record<string, unknown> = { perf: m, rounds: rows.map((x) => x.rps) };
      if (args.record !== undefined && w.name === "gateway") {
        // perf record of the gateway. JIT frames get names only with BUN_JSC_useJITDump=1 and
        // BUN_JSC_jitDumpDirectory=DIR in the gateway's environment and the dump's JIT_CODE_LOAD
        // records turned into /tmp/perf-PID.map afterwards (perf inject --jit does not find the dump
        // when perf attaches to a running process); Bun 1.4.4 refuses BUN_JSC_logJITCodeForPerf, and
        // its own binary has no symbols (native frames show as addresses).
        const load = wrk(`http://127.0.0.1:${w.port}/`, seconds, l.connections, l.extra);
        await Bun.sleep(500);
        const rec = spawnChild(["perf", "record", "-F", "2000", "-g", "-k", "1", "-o", join(args.record, `${l.load}.perf.data`), "-p", String(w.pid), "--", "sleep", String(seconds - 1.5)]);
        await rec.exited((seconds + 10) * 1000);
        await load;
      }
      if (args.strace) entry.strace = await straceMix(`http://127.0.0.1:${w.port}/`, w.pid, l.connections, l.extra, Math.min(seconds, 3));
      out[`${l.load}.${w.name}`] = entry;
      console.error(`${l.load} ${w.name}: ${JSON.stringify(entry)}`);
    }
  }
  return out;
}

async function main(): Promise<Row[]> {
  const missing = ["nginx", "wrk", "iperf3", "openssl"].filter((t) => !haveTool(t));
  if (missing.length > 0) return [{ name: "gateway.bench", unit: "", value: null, notMeasured: `missing tools: ${missing.join(", ")} (scripts/setup-system.sh installs them)` }];
  const s = await setup();
  const rows: Row[] = [];
  if (args.hold !== undefined) {
    // Diagnosis: keep the bed up for N seconds (strace/perf by hand).
    console.error(JSON.stringify({ gateway: { pid: s.gateway.pid, ...s.gw }, nginx: { pid: s.nginx.pid, ...s.ng }, backend: s.backendPort }));
    await Bun.sleep(Number(args.hold) * 1000);
    await stopAll();
    rmSync(s.dir, { recursive: true, force: true });
    process.exit(0);
  }
  if (args["per-request"]) {
    try {
      console.log(JSON.stringify(await perRequestMain(s), null, 1));
    } finally {
      await stopAll();
      rmSync(s.dir, { recursive: true, force: true });
    }
    process.exit(0);
  }
  try {
    const url = (w: "gateway" | "nginx", tls: boolean) => `${tls ? "https" : "http"}://127.0.0.1:${w === "gateway" ? (tls ? s.gw.https : s.gw.http) : tls ? s.ng.https : s.ng.http}/`;
    const close = ["-H", "Connection: close"];
    const pid = (w: "gateway" | "nginx") => (w === "gateway" ? s.gateway.pid : s.nginx.pid);
    const keepalive = () => versus("gateway.http.keepalive", "req/s", (w) => wrk(url(w, false), SECONDS, 64, [], pid(w)), "wrk -c64, 1 KiB POST each way, routed by the 3rd of 3 rules; ratio gateway / nginx", true);
    // Which comparisons run: --only a,b; --short (CI) the plain HTTP ones; full mode all.
    const all = ["keepalive", "short", "https-handshake", "https-keepalive", "bulk", "rss"];
    const only = args.only !== undefined ? args.only.split(",") : args.short ? ["keepalive", "short", "https-keepalive"] : all;
    const unknown = only.filter((x) => !all.includes(x));
    if (unknown.length > 0) throw new Error(`--only: unknown ${unknown.join(", ")} (one of ${all.join(", ")})`);
    const want = (x: string) => only.includes(x);
    let idle = { rssMiB: NaN, peakMiB: NaN };
    if (want("rss")) {
      await Bun.sleep(1000);
      idle = await memoryOf(s.gateway.pid);
    }
    // Warm both (JIT, pools) before measuring, with both request patterns: after 1 s of
    // keep-alive alone the gateway's first measured second still ran ~20% slow (its optimizing
    // JIT compiles on the second core meanwhile; 2026-12-05, three --short runs: 0.79, 0.80, 0.79
    // against 0.91-1.09 in the later repeats).
    for (const w of ["gateway", "nginx"] as const) {
      await wrk(url(w, false), w === "gateway" ? 2 : 1, 64);
      if (want("short")) await wrk(url(w, false), 1, 32, close);
    }
    if (want("https-handshake") || want("https-keepalive")) {
      await wrk(url("gateway", true), 1, 16);
      await wrk(url("nginx", true), 1, 16);
    }

    if (want("keepalive")) {
      const direct: Load[] = [];
      if (!args.short) for (let i = 0; i < Math.min(REPEATS, 3); i++) direct.push(await wrk(`http://127.0.0.1:${s.backendPort}/`, SECONDS, 64));
      const ka = await keepalive();
      rows.push(...ka);
      if (direct.length > 0) {
        const directRps = median(direct.map((d) => d.rps));
        rows.push({ name: "gateway.http.keepalive.vs_direct", unit: "x", value: round(ka[0]!.value! / directRps), reference: { name: "direct", value: round(directRps, 0) }, note: "gateway req/s over the backend alone (informational)" });
      }
    }
    if (want("short")) rows.push(...(await versus("gateway.http.short", "req/s", (w) => wrk(url(w, false), SECONDS, 32, close, pid(w)), "wrk -c32, Connection: close: a new client connection per request (upstreams pooled on both)", true)));
    if (want("https-handshake")) rows.push(...(await versus("gateway.https.handshake", "conn/s", (w) => wrk(url(w, true), SECONDS, 32, close), "wrk -c32 https, Connection: close: one full TLS handshake (ECDSA P-256) per request")));
    if (want("https-keepalive")) rows.push(...(await versus("gateway.https.keepalive", "req/s", (w) => wrk(url(w, true), SECONDS, 64), "wrk -c64 https, 1 KiB POST each way")));

    if (want("bulk")) {
      // Bulk through the TCP route vs direct, interleaved.
      const bulk: number[] = [];
      const bulkDirect: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        bulkDirect.push(await iperf3(s.iperfPort, SECONDS));
        bulk.push(await iperf3(s.gw.tcp, SECONDS));
      }
      const bulkRatios = bulk.map((b, i) => b / bulkDirect[i]!);
      rows.push({ name: "gateway.tcp.bulk", unit: "Gbit/s", value: round(median(bulk), 2), reference: { name: "direct", value: round(median(bulkDirect), 2) }, ratio: round(median(bulkRatios)), runs: bulkRatios.map((r) => round(r)), note: "iperf3 through a gateway TCP route / direct" });
    }

    if (want("rss")) {
      const after = await memoryOf(s.gateway.pid);
      const ngMem = await memoryOf(s.nginx.pid);
      rows.push({ name: "gateway.rss.idle", unit: "MiB", value: round(idle.rssMiB, 1), note: "VmRSS of `edgemesh gateway` 1 s after start (no tunnel)" });
      rows.push({ name: "gateway.rss.after_load", unit: "MiB", value: round(after.rssMiB, 1), reference: { name: "nginx", value: round(ngMem.rssMiB, 1) }, note: `VmRSS after every load above; peak ${round(after.peakMiB, 1)} MiB` });
    }
  } finally {
    await stopAll();
    rmSync(s.dir, { recursive: true, force: true });
  }
  return rows;
}

main().then(
  (rows) => {
    console.log(JSON.stringify(rows));
    process.exit(0);
  },
  async (err) => {
    await stopAll();
    console.log(JSON.stringify([{ name: "gateway.bench", unit: "", value: null, error: String((err as Error)?.message ?? err) }]));
    process.exit(1);
  },
);
