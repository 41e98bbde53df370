// Many distinct UDP flows against an echo service, as a DNS client, syslog or metrics agent
// would make them: each flow is its own socket bound to its own source port, sends one datagram
// (carrying the flow's number) and waits for the echo or a timeout, then closes. `concurrency`
// flows are in progress at a time. Source ports are first-port + i, so no two flows share a
// 4-tuple (an ephemeral port reused within the run would join an older flow).
// Prints one JSON line: { flows, echoed, lost, ms, rttP50Ms, rttP99Ms, bindErrors }.
//   bun udp-flood.ts --host H --port P [--flows 20000] [--concurrency 300] [--first-port 20000]
//                    [--timeout 3000] [--size 64]

import type { udp } from "bun";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    flows: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "300" },
    "first-port": { type: "string", default: "20000" },
    timeout: { type: "string", default: "3000" },
    size: { type: "string", default: "64" },
  },
});
const host = a.host!;
const port = Number(a.port);
const flows = Math.min(Number(a.flows), 40_000);
const concurrency = Math.max(1, Math.min(Number(a.concurrency), 2000));
const firstPort = Number(a["first-port"]);
const timeoutMs = Number(a.timeout);
const size = Math.max(8, Number(a.size));
if (!host || !port || firstPort + flows > 65535) throw new Error("--host and --port needed; first-port + flows must fit in 65535");

let next = 0;
let echoed = 0;
let bindErrors = 0;
const rtts: number[] = [];
const started = performance.now();

function oneFlow(i: number): Promise<void> {
  return new Promise((resolve) => {
    const payload = Buffer.alloc(size, 0x61);
    payload.writeUInt32BE(i, 0);
    let done = false;
    let sock: udp.Socket<"buffer"> | undefined;
    const t0 = performance.now();
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) {
        echoed++;
        rtts.push(performance.now() - t0);
      }
      sock?.close();
      resolve();
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    let bound: Promise<udp.Socket<"buffer">>;
    try {
      bound = Bun.udpSocket({
        port: firstPort + i,
        socket: {
          data(_s, d) {
            if (d.byteLength === size && Buffer.from(d.buffer, d.byteOffset, 4).readUInt32BE(0) === i) finish(true);
          },
          error() {},
        },
      });
    } catch {
      // Bun throws EADDRINUSE at once rather than rejecting
      bindErrors++;
      finish(false);
      return;
    }
    bound.then(
      (s) => {
        sock = s;
        if (done) return s.close();
        try {
          s.send(payload, port, host);
        } catch {
          // counted as lost when the timer fires
        }
      },
      () => {
        bindErrors++;
        finish(false);
      },
    );
  });
}

async function worker(): Promise<void> {
  while (next < flows) await oneFlow(next++);
}

await Promise.all(Array.from({ length: concurrency }, worker));
rtts.sort((x, y) => x - y);
const q = (p: number) => (rtts.length ? Math.round(rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))]! * 100) / 100 : -1);
console.log(JSON.stringify({ flows, echoed, lost: flows - echoed, ms: Math.round(performance.now() - started), rttP50Ms: q(0.5), rttP99Ms: q(0.99), bindErrors }));
process.exit(0);
