// Short UDP flows against an echo target, as DNS clients or metrics agents make them: each flow is
// a socket bound to its own source port (first-port + i, so no two flows share a 4-tuple within
// the run), one 64-byte datagram, its echo (or 1 s, then it counts as lost), close. `concurrency`
// flows at a time for `seconds`. What a proxy pays per new flow shows here, which a single
// long-lived flow (udp-client.ts) never shows. Prints one JSON line:
// {"flows_per_s", "echoed", "lost", "p50_ms", "p99_ms"}.
//   bun bench/macro/udp-flows.ts --port P [--seconds 3] [--concurrency 64] [--first-port 20000]

import type { udp } from "bun";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "64" },
    "first-port": { type: "string", default: "20000" },
  },
});
const port = Number(values.port);
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const firstPort = Number(values["first-port"]);
const LOSS_MS = 1000;
if (!port) throw new Error("--port is required");

let next = 0;
let echoed = 0;
let lost = 0;
/** Source ports another process holds (the machine is shared): skipped, not counted as flows. */
let portsInUse = 0;
const rtts: number[] = [];
const end = performance.now() + seconds * 1000;

function oneFlow(i: number): Promise<void> {
  return new Promise((resolve) => {
    const payload = new Uint8Array(64).fill(0x66);
    new DataView(payload.buffer).setUint32(0, i);
    let sock: udp.Socket<"uint8array"> | undefined;
    let done = false;
    const t0 = performance.now();
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) {
        echoed++;
        rtts.push(performance.now() - t0);
      } else lost++;
      sock?.close();
      resolve();
    };
    const timer = setTimeout(() => finish(false), LOSS_MS);
    let bound: Promise<udp.Socket<"uint8array">>;
    try {
      bound = Bun.udpSocket({
        hostname: "127.0.0.1",
        port: firstPort + i,
        binaryType: "uint8array",
        socket: {
          data(_s, d) {
            if (d.byteLength === 64 && new DataView(d.buffer, d.byteOffset, 4).getUint32(0) === i) finish(true);
          },
          error() {},
        },
      });
    } catch {
      portsInUse++;
      done = true;
      clearTimeout(timer);
      resolve();
      return;
    }
    bound.then(
      (s) => {
        sock = s;
        if (done) return s.close();
        try {
          s.send(payload, port, "127.0.0.1");
        } catch {
          // counted lost by the timer
        }
      },
      () => finish(false),
    );
  });
}

async function worker(): Promise<void> {
  while (performance.now() < end && firstPort + next < 65535) await oneFlow(next++);
}

const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - t0) / 1000;
rtts.sort((a, b) => a - b);
const q = (p: number) => (rtts.length ? Math.round(rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))]! * 1000) / 1000 : -1);
console.log(JSON.stringify({ flows_per_s: echoed / elapsed, echoed, lost, p50_ms: q(0.5), p99_ms: q(0.99), ports_in_use: portsInUse }));
process.exit(0);
