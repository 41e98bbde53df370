// Bounded UDP load: keeps `inflight` datagrams of `size` bytes outstanding against an echo
// target for `seconds`, one new datagram per reply. Lost datagrams are replaced when no reply
// arrived for a while, so loss lowers the rate instead of stalling it. Prints one JSON line:
// {"pps", "received", "sent", "seconds"}.
//   bun bench/macro/udp-client.ts --port P [--size 512] [--inflight 32] [--seconds 3]

import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    size: { type: "string", default: "512" },
    inflight: { type: "string", default: "32" },
    seconds: { type: "string", default: "3" },
    warmup: { type: "string", default: "0.5" },
  },
});
const port = Number(values.port);
const size = Number(values.size);
const inflight = Number(values.inflight);
const seconds = Number(values.seconds);
const warmupMs = Number(values.warmup) * 1000;
if (!port) throw new Error("--port is required");

const payload = new Uint8Array(size).fill(0x62);
/** A stall longer than this means datagrams were lost: top the window up again. */
const STALL_MS = 20;

let received = 0;
let sent = 0;
let outstanding = 0;
let lastReply = performance.now();

const socket = await Bun.udpSocket({
  socket: {
    data() {
      received++;
      outstanding--;
      lastReply = performance.now();
      send();
    },
    error() {},
  },
});

function send(): void {
  try {
    socket.send(payload, port, "127.0.0.1");
    sent++;
    outstanding++;
  } catch {
    // Counted as lost; the stall timer refills the window.
  }
}

function fill(): void {
  while (outstanding < inflight) send();
}

const refill = setInterval(() => {
  if (performance.now() - lastReply > STALL_MS) {
    outstanding = 0;
    fill();
  }
}, STALL_MS);

fill();
await Bun.sleep(warmupMs);
const r0 = received;
const t0 = performance.now();
await Bun.sleep(seconds * 1000);
const r1 = received;
const t1 = performance.now();
clearInterval(refill);
socket.close();
const elapsed = (t1 - t0) / 1000;
console.log(JSON.stringify({ pps: (r1 - r0) / elapsed, received: r1 - r0, sent, seconds: elapsed }));
process.exit(0);
