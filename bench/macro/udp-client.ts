// Bounded UDP load: keeps `inflight` datagrams of `size` bytes outstanding against an echo
// target for `seconds`, one new datagram per reply. Each datagram carries a sequence number; one
// without a reply after LOSS_MS is counted lost and replaced, so loss costs a little rate instead
// of shrinking the window. Prints one JSON line: {"pps", "received", "sent", "lost", "seconds",
// "p50_ms", "p99_ms"} (round-trip times of the replies counted in the measured window).
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
const view = new DataView(payload.buffer);
/** A datagram without a reply after this long is counted lost and replaced (loopback RTT is µs). */
const LOSS_MS = 50;
const TICK_MS = 10;

/** Round-trip times (ms) of the replies in the measured window; a ring when there are more. */
const rtts = new Float64Array(1 << 18);
let rttCount = 0;
let measuring = false;
let received = 0;
let sent = 0;
let lost = 0;
let seq = 0;
/** seq -> send time of datagrams in flight; at most `inflight` entries. */
const outstanding = new Map<number, number>();

const socket = await Bun.udpSocket({
  socket: {
    data(_s, buf) {
      if (buf.byteLength < 4) return;
      const id = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0);
      const at = outstanding.get(id);
      if (at === undefined || !outstanding.delete(id)) return; // a late reply to one already counted lost
      if (measuring) rtts[rttCount++ & (rtts.length - 1)] = performance.now() - at;
      received++;
      send();
    },
    error() {},
  },
});

function send(): void {
  const id = seq++ >>> 0;
  view.setUint32(0, id);
  outstanding.set(id, performance.now());
  try {
    socket.send(payload, port, "127.0.0.1");
    sent++;
  } catch {
    // Left in `outstanding`: the loss timer replaces it.
  }
}

function fill(): void {
  while (outstanding.size < inflight) send();
}

// Lost datagrams would shrink the window for good; replace them so 32 stay in flight.
const refill = setInterval(() => {
  const now = performance.now();
  for (const [id, at] of outstanding) {
    if (now - at > LOSS_MS) {
      outstanding.delete(id);
      lost++;
    }
  }
  fill();
}, TICK_MS);

fill();
await Bun.sleep(warmupMs);
const r0 = received;
const t0 = performance.now();
measuring = true;
await Bun.sleep(seconds * 1000);
measuring = false;
const r1 = received;
const t1 = performance.now();
clearInterval(refill);
socket.close();
const elapsed = (t1 - t0) / 1000;
const sorted = rtts.slice(0, Math.min(rttCount, rtts.length)).sort();
const q = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 1000) / 1000 : -1);
console.log(JSON.stringify({ pps: (r1 - r0) / elapsed, received: r1 - r0, sent, lost, seconds: elapsed, p50_ms: q(0.5), p99_ms: q(0.99) }));
process.exit(0);
