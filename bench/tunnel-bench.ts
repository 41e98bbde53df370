// Cross-node path benchmark: client -> agent A's proxy -> libp2p tunnel -> agent B -> server,
// against client -> server directly, in the same run, on loopback. Two agent processes (each a
// real tunnel + proxy + TunnelDialer + inbound handler with a fixed table placing the servers on
// node B), bulk throughput with iperf3 and 1 KiB request/response with wrk over 64 connections
// (bench/macro/load.ts), PSK on and off, TCP (and QUIC without PSK). CPU-seconds per GiB is the
// two agents' CPU time during the bulk run over the bytes moved. A "raw" row measures the tunnel
// alone (two processes, proxy streams driven directly, no proxy or sockets at either end), so the
// share of the gap that is the tunnel's and the share that is the splice's can be told apart.
// "short_*": one fresh connection at a time (connect, 1 KiB POST, response, close; macro/
// short-conn.ts), p50 latency and rate vs direct: what a proxy stream open (CONNECT -> SUCCESS on
// the live libp2p connection) adds to every short connection.
// Prints one JSON document.
//
//   bun bench/tunnel-bench.ts            full (10 s per measurement)
//   bun bench/tunnel-bench.ts --short    ~30-40 s, for the CI gate
//   bun bench/tunnel-bench.ts --raw-only [--transport quic] [--psk 0]   the raw tunnel row alone
//   (internal) bun bench/tunnel-bench.ts --role agent ...   one agent process

import { parseArgs } from "node:util";
import { iperf3, wrk } from "./macro/load.ts";
import { type Child, cpuSecondsOf, freePort, haveTool, spawnBun, spawnChild, stopAll, waitTcp } from "./macro/procs.ts";

const { values: args } = parseArgs({
  options: {
    role: { type: "string" },
    node: { type: "string" },
    psk: { type: "string", default: "1" },
    transport: { type: "string", default: "tcp" },
    iperf: { type: "string" },
    http: { type: "string" },
    peer: { type: "string" },
    // Relay path: "self" runs the relay (circuit relay v2 server); otherwise the relay's AgentInfo.
    relay: { type: "string" },
    // "none": no listener of its own, reachable only through the relay.
    listen: { type: "string" },
    short: { type: "boolean", default: false },
    seconds: { type: "string" },
    mode: { type: "string" },
    "raw-only": { type: "boolean", default: false },
  },
});

interface AgentInfo {
  node: string;
  peerId: string;
  addrs: string[];
  ports: { iperf: number; http: number };
}

if (args.role === "agent") await runAgent();
else if (args.role === "raw-b") await runRawB();
else if (args.role === "raw-a") await runRawA();
else await main();

async function bareTunnel(node: string) {
  const { createTunnel } = await import("../src/tunnel/index.ts");
  const { createLogger } = await import("../src/log/index.ts");
  const { createMetrics } = await import("../src/metrics/index.ts");
  return createTunnel({
    nodeName: node,
    listenPort: 0,
    listenAddrs: [args.transport === "quic" ? "/ip4/127.0.0.1/udp/0/quic-v1" : "/ip4/127.0.0.1/tcp/0"],
    transport: args.transport === "quic" ? "quic" : "tcp",
    psk: args.psk === "1" ? new Uint8Array(32).fill(42) : undefined,
    identity: { mode: "compat" },
    relayNodes: [],
    mdns: false,
    rendezvous: "EDGEMESH_BENCH",
    enableHolePunch: false,
    log: createLogger({ level: "warn", component: node }),
    metrics: createMetrics(),
  });
}

/** Raw far end: port 1 = discard, port 2 = echo, straight on the libp2p stream. */
async function runRawB(): Promise<void> {
  const tunnel = await bareTunnel("node-b");
  tunnel.handleProxy((h, stream) => {
    if (h.port === 2) stream.addEventListener("message", (e) => void stream.send(e.data));
    else stream.addEventListener("message", () => {});
    return true;
  });
  await tunnel.start();
  console.log(JSON.stringify({ node: "node-b", peerId: tunnel.peerId, addrs: tunnel.addrs(), ports: { iperf: 0, http: 0 } } satisfies AgentInfo));
  process.on("SIGTERM", () => void tunnel.stop().finally(() => process.exit(0)));
}

/** Raw near end: bulk (64 KiB sends honouring 'drain') or 64 streams of 1 KiB round trips. */
async function runRawA(): Promise<void> {
  const tunnel = await bareTunnel("node-a");
  await tunnel.start();
  const peer = JSON.parse(args.peer!) as AgentInfo;
  await tunnel.addPeer(peer.node, peer.peerId, peer.addrs);
  const ms = Number(args.seconds ?? 3) * 1000;
  if (args.mode === "bulk") {
    const { stream } = await tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "127.0.0.1", port: 1 });
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    const cpu0 = process.cpuUsage();
    const end = performance.now() + ms;
    while (performance.now() < end) {
      sent += chunk.length;
      if (!stream.send(chunk)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
    }
    const cpu = process.cpuUsage(cpu0);
    console.log(JSON.stringify({ gbps: (sent * 8) / (ms / 1000) / 1e9, bytes: sent, cpu: (cpu.user + cpu.system) / 1e6 }));
  } else {
    const body = new Uint8Array(1024);
    let count = 0;
    const end = performance.now() + ms;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        const { stream } = await tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "127.0.0.1", port: 2 });
        let got = 0;
        let wake: (() => void) | undefined;
        stream.addEventListener("message", (e) => {
          got += e.data.byteLength;
          while (got >= body.length) {
            got -= body.length;
            count++;
            wake?.();
          }
        });
        while (performance.now() < end) {
          const p = new Promise<void>((r) => (wake = r));
          stream.send(body);
          await p;
        }
      }),
    );
    console.log(JSON.stringify({ rps: count / (ms / 1000) }));
  }
  await tunnel.stop();
  process.exit(0);
}

async function measureRaw(name: string, psk: boolean, seconds: number, transport = "tcp"): Promise<Record<string, unknown>> {
  const p = psk ? "1" : "0";
  const b = spawnBun("../tunnel-bench.ts", ["--role", "raw-b", "--psk", p, "--transport", transport]);
  try {
    const info = await b.nextJson<AgentInfo>(20_000);
    const run = async (mode: string) => {
      const a = spawnBun("../tunnel-bench.ts", ["--role", "raw-a", "--psk", p, "--transport", transport, "--mode", mode, "--seconds", String(seconds), "--peer", JSON.stringify(info)]);
      try {
        const c0 = await cpuSecondsOf(b.pid);
        const out = await a.nextJson<{ gbps?: number; rps?: number; bytes?: number; cpu?: number }>((seconds + 20) * 1000);
        return { ...out, farCpu: (await cpuSecondsOf(b.pid)) - c0 };
      } finally {
        await a.stop();
      }
    };
    const bulk = await run("bulk");
    const rr = await run("rr");
    // CPU seconds per GiB on each side of the bulk run (sender's own timed loop; receiver's whole run).
    const gib = (bulk.bytes ?? 0) / 2 ** 30;
    const perGiB = (s: number | undefined) => (gib > 0 && s !== undefined ? Math.round((s / gib) * 100) / 100 : undefined);
    return { bulk_gbps: bulk.gbps, send_cpu_s_per_gib: perGiB(bulk.cpu), recv_cpu_s_per_gib: perGiB(bulk.farCpu), rps: rr.rps };
  } catch (err) {
    return { error: `${name}: ${(err as Error).message.slice(0, 300)}` };
  } finally {
    await b.stop();
  }
}

/** One agent: tunnel + proxy on 127.0.0.1; prints AgentInfo and runs until killed. */
async function runAgent(): Promise<void> {
  const { createTunnel } = await import("../src/tunnel/index.ts");
  const { createProxy, createTunnelDialer, createInboundHandler } = await import("../src/hotpath/index.ts");
  const { createLogger } = await import("../src/log/index.ts");
  const { createMetrics } = await import("../src/metrics/index.ts");
  const { deepFreeze, portKey } = await import("../src/control/table.ts");
  const node = args.node!;
  const log = createLogger({ level: "warn", component: node });
  const metrics = createMetrics();
  const quic = args.transport === "quic";
  const relayInfo = args.relay && args.relay !== "self" ? (JSON.parse(args.relay) as AgentInfo) : undefined;
  const tunnel = createTunnel({
    nodeName: node,
    listenPort: 0,
    listenAddrs: args.listen === "none" ? [] : [quic ? "/ip4/127.0.0.1/udp/0/quic-v1" : "/ip4/127.0.0.1/tcp/0"],
    transport: quic ? "quic" : "tcp",
    psk: args.psk === "1" ? new Uint8Array(32).fill(42) : undefined,
    identity: { mode: "compat" },
    relayNodes: relayInfo ? [{ nodeName: relayInfo.node, advertiseAddress: relayInfo.addrs.map((a) => a.replace(/\/p2p\/.*$/, "")) }] : [],
    isRelay: args.relay === "self",
    mdns: false,
    rendezvous: "EDGEMESH_BENCH",
    enableHolePunch: false,
    log,
    metrics,
  });
  const ep = (port: string) => [{ ip: "127.0.0.1", port: Number(port), node: "node-b", ready: true, hostname: "", zone: "" }];
  const sp = (name: string, port: string) => ({
    key: portKey("default", name, 80, "TCP"),
    namespace: "default",
    name,
    portName: "",
    port: 80,
    protocol: "TCP" as const,
    clusterIPs: [],
    nodePort: 0,
    externalIPs: [],
    policy: { kind: "ROUND_ROBIN" as const },
    affinity: { clientIP: false, timeoutSeconds: 0 },
    endpoints: ep(port),
  });
  const ports = [sp("http", args.http!), sp("iperf", args.iperf!)];
  const table = deepFreeze({ version: 1, compiledAt: Date.now(), ports, byKey: Object.fromEntries(ports.map((p) => [p.key, p])), services: [] });
  const source = { current: () => table as never, subscribe: () => () => {} };
  const remote = createTunnelDialer({ tunnel, log, metrics });
  const proxy = createProxy({
    table: source,
    bindHost: "127.0.0.1",
    nodeName: node,
    remote,
    maxConnections: 4096,
    maxConnectionsPerPort: 0,
    udpIdleTimeoutMs: 30_000,
    consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    metrics,
    log,
  });
  proxy.start();
  const inbound = createInboundHandler({ proxy, table: source, nodeName: node, udpIdleTimeoutMs: 30_000, log, metrics });
  tunnel.handleProxy(inbound.handle);
  await tunnel.start();
  if (args.peer) {
    const p = JSON.parse(args.peer) as AgentInfo;
    await tunnel.addPeer(p.node, p.peerId, p.addrs);
  }
  for (let i = 0; i < 100 && proxy.listeners().size < 2; i++) await Bun.sleep(10);
  // Reachable only through the relay: wait for the reservation before telling anyone.
  if (args.listen === "none") for (let i = 0; i < 500 && !tunnel.addrs().some((x) => x.includes("/p2p-circuit")); i++) await Bun.sleep(20);
  const port = (name: string) => proxy.listeners().get(portKey("default", name, 80, "TCP"))!.port;
  console.log(JSON.stringify({ node, peerId: tunnel.peerId, addrs: tunnel.addrs(), ports: { iperf: port("iperf"), http: port("http") } } satisfies AgentInfo));
  process.on("SIGTERM", () => {
    proxy.stop();
    void tunnel.stop().finally(() => process.exit(0));
  });
}

/** Sequential connect + 1 KiB POST + response + close (bench/macro/short-conn.ts). */
async function shortConn(port: number, seconds: number): Promise<{ p50_ms: number; p99_ms: number; rate: number; errors: number }> {
  const child = spawnBun("./short-conn.ts", ["--port", String(port), "--seconds", String(seconds)]);
  try {
    return await child.nextJson((seconds + 20) * 1000);
  } finally {
    await child.stop();
  }
}

interface PathResult {
  name: string;
  bulkGbps?: number;
  rps?: number;
  short?: { p50_ms: number; p99_ms: number; rate: number; errors: number };
  rpsErrors?: number;
  cpuSecondsPerGiB?: number;
  error?: string;
}

/**
 * Agents A and B (B serves the backends); with `viaRelay`, a third agent runs the relay and B has
 * no listener of its own, so A reaches B only as /p2p/RELAY/p2p-circuit/p2p/B.
 */
async function startPair(psk: boolean, transport: string, iperfPort: number, httpPort: number, viaRelay = false): Promise<{ a: Child; b: Child; relay?: Child; entry: AgentInfo }> {
  const common = ["--role", "agent", "--psk", psk ? "1" : "0", "--transport", transport, "--iperf", String(iperfPort), "--http", String(httpPort)];
  let relay: Child | undefined;
  let viaArgs: string[] = [];
  if (viaRelay) {
    relay = spawnBun("../tunnel-bench.ts", [...common, "--node", "relay", "--relay", "self"]);
    viaArgs = ["--relay", JSON.stringify(await relay.nextJson<AgentInfo>(20_000))];
  }
  const b = spawnBun("../tunnel-bench.ts", [...common, "--node", "node-b", ...viaArgs, ...(viaRelay ? ["--listen", "none"] : [])]);
  const infoB = await b.nextJson<AgentInfo>(20_000);
  const a = spawnBun("../tunnel-bench.ts", [...common, "--node", "node-a", "--peer", JSON.stringify(infoB), ...viaArgs]);
  const entry = await a.nextJson<AgentInfo>(20_000);
  // One request opens the libp2p connection (dial, PSK, Noise, yamux) before anything is timed.
  const res = await fetch(`http://127.0.0.1:${entry.ports.http}/`, { method: "POST", body: "warm" });
  if (!res.ok) throw new Error(`warm-up request through the tunnel: HTTP ${res.status}`);
  await res.arrayBuffer();
  return { a, b, relay, entry };
}

async function measurePath(name: string, psk: boolean, transport: string, iperfPort: number, httpPort: number, seconds: number, viaRelay = false): Promise<PathResult> {
  let pair: Awaited<ReturnType<typeof startPair>> | undefined;
  try {
    pair = await startPair(psk, transport, iperfPort, httpPort, viaRelay);
    const agents = [pair.a, pair.b, ...(pair.relay ? [pair.relay] : [])];
    const cpu = async () => (await Promise.all(agents.map((c) => cpuSecondsOf(c.pid)))).reduce((x, y) => x + y, 0);
    const cpu0 = await cpu();
    const bulkGbps = await iperf3(pair.entry.ports.iperf, seconds);
    const cpu1 = await cpu();
    // iperf3 runs seconds + 1 (the omitted slow-start second moves bytes too).
    const gib = (bulkGbps * 1e9 * (seconds + 1)) / 8 / 2 ** 30;
    const r = await wrk(pair.entry.ports.http, seconds);
    const short = await shortConn(pair.entry.ports.http, seconds);
    return { name, bulkGbps, rps: r.rps, rpsErrors: r.errors, cpuSecondsPerGiB: (cpu1 - cpu0) / gib, short };
  } catch (err) {
    return { name, error: (err as Error).message.slice(0, 400) };
  } finally {
    await pair?.a.stop();
    await pair?.b.stop();
    await pair?.relay?.stop();
  }
}

async function main(): Promise<void> {
  const seconds = Number(args.seconds ?? (args.short ? 3 : 10));
  if (!haveTool("iperf3") || !haveTool("wrk")) {
    console.log(JSON.stringify({ error: "iperf3 and wrk are needed (apt-get install iperf3 wrk)" }));
    process.exit(1);
  }
  const stop = () => void stopAll().finally(() => process.exit(130));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  if (args["raw-only"]) {
    const t = args.transport ?? "tcp";
    const psk = args.psk === "1";
    try {
      console.log(JSON.stringify({ seconds, [`raw_${t}_${psk ? "psk" : "nopsk"}`]: await measureRaw(`raw_${t}`, psk, seconds, t) }, null, 2));
    } finally {
      await stopAll();
    }
    process.exit(0);
  }
  try {
    const iperfPort = await freePort();
    spawnChild(["iperf3", "-s", "-p", String(iperfPort)]);
    await waitTcp(iperfPort);
    const http = spawnBun("./http-backend.ts");
    const httpPort = (await http.nextJson<{ port: number }>()).port;

    const direct = { bulkGbps: await iperf3(iperfPort, seconds), rps: (await wrk(httpPort, seconds)).rps, short: await shortConn(httpPort, seconds) };
    const paths: PathResult[] = [
      await measurePath("tcp_psk", true, "tcp", iperfPort, httpPort, seconds),
      await measurePath("tcp_nopsk", false, "tcp", iperfPort, httpPort, seconds),
      // The same through a relay node (B reachable only via circuit relay v2; relayed
      // connections carry PSK + Noise twice, inside and out, as go-libp2p's do).
      await measurePath("tcp_psk_relay", true, "tcp", iperfPort, httpPort, seconds, true),
    ];
    if (!args.short) paths.push(await measurePath("quic_nopsk", false, "quic", iperfPort, httpPort, seconds));
    const raw: Record<string, unknown> = { tcp_psk: await measureRaw("raw_tcp_psk", true, seconds), tcp_nopsk: await measureRaw("raw_tcp_nopsk", false, seconds) };
    if (!args.short) raw.quic_nopsk = await measureRaw("raw_quic_nopsk", false, seconds, "quic");

    const out: Record<string, unknown> = {
      seconds,
      direct: { bulk_gbps: direct.bulkGbps, rps: direct.rps, short_p50_ms: direct.short.p50_ms, short_rate: direct.short.rate },
    };
    for (const p of paths) {
      out[p.name] = p.error
        ? { error: p.error }
        : {
            bulk_gbps: p.bulkGbps,
            bulk_ratio: p.bulkGbps! / direct.bulkGbps,
            rps: p.rps,
            rps_ratio: p.rps! / direct.rps,
            rps_errors: p.rpsErrors,
            cpu_s_per_gib: p.cpuSecondsPerGiB,
            // One fresh connection at a time: connect, 1 KiB request, response, close.
            short_p50_ms: p.short?.p50_ms,
            short_p99_ms: p.short?.p99_ms,
            short_rate: p.short?.rate,
            short_rate_ratio: p.short ? p.short.rate / direct.short.rate : undefined,
            short_errors: p.short?.errors,
          };
    }
    // The tunnel alone, for reading the rows above: the path cannot beat these.
    out.raw_tunnel = raw;
    out.targets = { tcp_psk: { bulk_ratio: 0.12, rps_ratio: 0.35 }, tcp_nopsk: { bulk_ratio: 0.2, rps_ratio: 0.35 } };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await stopAll();
  }
  process.exit(0);
}
