// Test helper, run inside a network namespace: opens the Edge CNI TUN device through src/host,
// routes the CIDRs it is told into it, and answers ICMP echo requests that arrive there by
// writing the replies back into the device. Commands on stdin, one per line:
//   routes CIDR[,CIDR...]   desired tunneled CIDRs ("routes -" for none)
// Prints "ready" once the device is up, "synced N" after the Nth routes command is applied (the
// number tells a waiter which command; the syncer's own log lines also say "synced"), and one
// JSON stats line per second. SIGTERM: close the device and exit 0.
//   bun test/support/cni/tun-echo.ts [--offload 0|1] [--mtu 1500] [--src IP]

import { parseArgs } from "node:util";
import { createRouteSyncer, openTun, VNET_HDR_BYTES } from "../../../src/host/index.ts";
import { createLogger } from "../../../src/log/index.ts";
import { createMetrics } from "../../../src/metrics/index.ts";

const { values } = parseArgs({ options: { offload: { type: "string", default: "1" }, mtu: { type: "string", default: "1500" }, src: { type: "string" } } });
const log = createLogger({ component: "tun-echo" });
const metrics = createMetrics();
let tun;
try {
  tun = await openTun({ mtu: Number(values.mtu), offload: values.offload === "1", log });
} catch (err) {
  console.log(`open failed: ${(err as Error).message}`);
  process.exit(3);
}
const routes = createRouteSyncer({ device: tun.name, src: () => values.src, log, metrics, resyncMs: 500 });
const hdr = tun.vnetHdr ? VNET_HDR_BYTES : 0;
const buf = new Uint8Array(65536 + hdr);
const stats = { read: 0, echoed: 0, gso: 0, other: 0, errors: 0 };

// Returns the packets read in this pass (the device calls again at once while it is not 0).
tun.watch(() => {
  let got = 0;
  for (;;) {
    const n = tun.read(buf, 0, buf.length);
    if (n === 0) return got;
    if (n < 0) {
      stats.errors++;
      return got;
    }
    got++;
    stats.read++;
    if (hdr && buf[1] !== 0) stats.gso++;
    const ip = hdr;
    if (buf[ip]! >> 4 !== 4 || buf[ip + 9] !== 1 || buf[ip + (buf[ip]! & 15) * 4] !== 8) {
      stats.other++;
      continue;
    }
    // Echo request -> reply: swap addresses (the IP checksum does not change), type 8 -> 0 and
    // fix the ICMP checksum for that one-word change.
    for (let i = 0; i < 4; i++) {
      const t = buf[ip + 12 + i]!;
      buf[ip + 12 + i] = buf[ip + 16 + i]!;
      buf[ip + 16 + i] = t;
    }
    const icmp = ip + (buf[ip]! & 15) * 4;
    buf[icmp] = 0;
    let sum = ((buf[icmp + 2]! << 8) | buf[icmp + 3]!) + 0x0800;
    sum = (sum & 0xffff) + (sum >> 16);
    buf[icmp + 2] = sum >> 8;
    buf[icmp + 3] = sum & 255;
    if (hdr) buf.fill(0, 0, hdr);
    if (tun.write(buf, 0, n) === n) stats.echoed++;
    else stats.errors++;
  }
});

const timer = setInterval(() => console.log(JSON.stringify(stats)), 1000);
process.on("SIGTERM", async () => {
  clearInterval(timer);
  await routes.stop();
  await tun.close();
  console.log("closed");
  process.exit(0);
});
console.log("ready");
let syncs = 0;
for await (const line of console) {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "routes") {
    routes.update(arg === "-" || !arg ? [] : arg.split(","));
    await routes.settled();
    console.log(`synced ${++syncs}`);
  }
}
