// A minimal proxy process for the zero-copy benchmark, in its own process so /proc CPU is its own.
//   bun bench/macro/zerocopy-proxy.ts --target PORT --mode zc|naive
// zc: Bun.listen + Bun.connect, and as soon as the upstream is connected both fds go to the
// splice(2) engine and the Bun sockets are closed (what an "adopt at once" hook would do).
// naive: the plain Bun forwarder (write, pause on short write, resume on drain) for reference.
// Prints {"pid","port"} and serves until SIGTERM or stdin closes.

import { parseArgs } from "node:util";
import { createZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { startZcProxy } from "../../test/support/zc-proxy.ts";
import { startNaive } from "./naive-forwarder.ts";

const { values } = parseArgs({ options: { target: { type: "string" }, mode: { type: "string", default: "zc" }, pipe: { type: "string", default: "1048576" } } });
const target = Number(values.target);
if (!(target > 0)) throw new Error("--target PORT is required");

let stop: () => Promise<void> = async () => {};
let port: number;

if (values.mode === "naive") {
  const l = await startNaive([{ name: "t", protocol: "TCP", host: "127.0.0.1", port: target }]);
  port = l.get("t")!.port;
} else {
  const metrics = createMetrics();
  const engine = createZeroCopyEngine({ maxPairs: 1024, pipeBytes: Number(values.pipe), log: createLogger({ level: "warn" }), metrics });
  await engine.start();
  // Pairs' done records are kept (one small object per connection; the benchmark opens few).
  port = startZcProxy(engine, target).listener.port;
  stop = () => engine.stop();
}

console.log(JSON.stringify({ pid: process.pid, port }));
const quit = async () => {
  await stop();
  process.exit(0);
};
process.on("SIGTERM", quit);
process.stdin.on("end", quit);
process.stdin.resume();
