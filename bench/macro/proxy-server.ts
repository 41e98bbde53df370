// The proxy under test, in its own process so its CPU, RSS and heap are its own.
//   bun bench/macro/proxy-server.ts --backend NAME=TCP:127.0.0.1:5201 [--backend ...]
//       [--impl edgemesh|naive] [--engine native|js] [--count-chunks]
// --engine js: the JS splice(2) engine for elephant flows only, as before the C flow loop
// (the comparison row of per-request.ts); default: what the agent ships (the C loop), or
// EDGEMESH_BENCH_ENGINE=js to run a whole gate run (check.ts) on the JS path for an A/B.
// Builds a RouteTable with one service port per backend (one endpoint each), starts the proxy
// on loopback and prints {"pid", "listeners": {NAME: {port, protocol}}}. Then it serves stdin
// commands, one JSON line answer each: heap-begin, heap-end, heap-live, metrics. Exits when stdin
// closes or on SIGTERM.

import { parseArgs } from "node:util";
import { install } from "./chunk-counter.ts";
import type { Backend } from "./naive-forwarder.ts";

const { values } = parseArgs({
  options: {
    backend: { type: "string", multiple: true, default: [] },
    impl: { type: "string", default: "edgemesh" },
    engine: { type: "string", default: process.env.EDGEMESH_BENCH_ENGINE ?? "native" },
    "count-chunks": { type: "boolean", default: false },
  },
});

const backends: Backend[] = values.backend.map((spec) => {
  const m = spec.match(/^([\w-]+)=(TCP|UDP):([\d.]+):(\d+)$/);
  if (!m) throw new Error(`--backend ${spec}: expected NAME=TCP|UDP:HOST:PORT`);
  return { name: m[1]!, protocol: m[2] as "TCP" | "UDP", host: m[3]!, port: Number(m[4]) };
});

// Before the proxy module is loaded, so every socket it creates is counted.
if (values["count-chunks"]) install();

let stop: () => void | Promise<void> = () => {};
let metricsSnapshot: () => Record<string, number> = () => ({});
let listeners: Map<string, { port: number; protocol: string }>;

if (values.impl === "naive") {
  const { startNaive } = await import("./naive-forwarder.ts");
  listeners = await startNaive(backends);
} else {
  const { startEdgemesh } = await import("./edgemesh-proxy.ts");
  const started = await startEdgemesh(backends, { zeroCopy: !values["count-chunks"], native: values.engine !== "js" });
  listeners = started.listeners;
  stop = started.stop;
  metricsSnapshot = started.metrics;
}

console.log(JSON.stringify({ pid: process.pid, listeners: Object.fromEntries(listeners) }));

const probe = await import("./heap-probe.ts");
const commands: Record<string, () => unknown> = {
  "heap-begin": probe.begin,
  "heap-end": probe.end,
  "heap-live": probe.live,
  metrics: () => metricsSnapshot(),
};

async function shutdown(): Promise<never> {
  try {
    await stop();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", shutdown);

const decoder = new TextDecoder();
let partial = "";
for await (const chunk of Bun.stdin.stream()) {
  partial += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = partial.indexOf("\n")) >= 0) {
    const cmd = partial.slice(0, nl).trim();
    partial = partial.slice(nl + 1);
    const fn = commands[cmd];
    try {
      console.log(JSON.stringify(fn ? fn() : { error: `unknown command ${cmd}` }));
    } catch (err) {
      console.log(JSON.stringify({ error: String(err) }));
    }
  }
}
await shutdown();
