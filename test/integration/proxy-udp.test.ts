import { afterAll, describe, expect, test } from "bun:test";
import type { udp } from "bun";
import { createZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { runCleanups, startProxy, type Harness } from "./proxy-support.ts";

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

async function udpEcho(tag = ""): Promise<udp.Socket<"uint8array">> {
  const prefix = new TextEncoder().encode(tag);
  const s = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(sock, buf, port, addr) {
        if (prefix.length === 0) sock.send(buf, port, addr);
        else {
          const out = new Uint8Array(prefix.length + buf.length);
          out.set(prefix);
          out.set(buf, prefix.length);
          sock.send(out, port, addr);
        }
      },
      error() {},
    },
  });
  cleanups.push(() => s.close());
  return s;
}

async function udpClient(): Promise<{ sock: udp.Socket<"uint8array">; got: Uint8Array[] }> {
  const got: Uint8Array[] = [];
  const sock = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, buf) {
        got.push(buf);
      },
      error() {},
    },
  });
  cleanups.push(() => sock.close());
  return { sock, got };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
}

/** With a zero-copy engine, as the agent runs (UDP never uses it; it must not get in the way). */
function harness(specs: Parameters<typeof startProxy>[0], extra: Parameters<typeof startProxy>[1] = {}): Harness {
  const zeroCopy = createZeroCopyEngine({ maxPairs: 64, log: createMemoryLogger(), metrics: createMetrics() });
  const h = startProxy(specs, { zeroCopy, ...extra });
  cleanups.push(() => h.proxy.stop());
  return h;
}

describe("UDP forwarding", () => {
  test("echo keeps datagram boundaries and sizes (1, 512, 1400, 8000 bytes)", async () => {
    const echo = await udpEcho();
    const h = harness([{ name: "dns", port: 53, protocol: "UDP", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("dns", 53, "UDP");
    const { sock, got } = await udpClient();
    const sizes = [1, 512, 1400, 8000, 1, 8000, 512];
    const sent = sizes.map((n, i) => new Uint8Array(n).fill(i + 1));
    // The first datagram creates the flow; the rest ride it (queued while its socket binds).
    for (const d of sent) sock.send(d, port, "127.0.0.1");
    await until(() => got.length === sent.length);
    const bySize = (a: Uint8Array, b: Uint8Array) => a.length - b.length || a[0]! - b[0]!;
    expect([...got].sort(bySize).map((d) => [d.length, d[0]])).toEqual([...sent].sort(bySize).map((d) => [d.length, d[0]]));
    expect(got.every((d) => d.every((x) => x === d[0]))).toBe(true);
    expect(h.proxy.stats().udpFlows).toBe(1);
  });

  test("each client address gets its own flow and its own replies", async () => {
    const a = await udpEcho("A");
    const b = await udpEcho("B");
    const h = harness([{ name: "rr", port: 53, protocol: "UDP", endpoints: [{ port: a.port }, { port: b.port }] }]);
    const { port } = await h.addr("rr", 53, "UDP");
    const c1 = await udpClient();
    const c2 = await udpClient();
    for (let i = 0; i < 3; i++) {
      c1.sock.send(new TextEncoder().encode(`one${i}`), port, "127.0.0.1");
      c2.sock.send(new TextEncoder().encode(`two${i}`), port, "127.0.0.1");
      await Bun.sleep(10);
    }
    await until(() => c1.got.length === 3 && c2.got.length === 3);
    const t1 = c1.got.map((d) => new TextDecoder().decode(d));
    const t2 = c2.got.map((d) => new TextDecoder().decode(d));
    // Round robin across flows, sticky within a flow.
    expect(new Set(t1.map((t) => t[0])).size).toBe(1);
    expect(new Set(t2.map((t) => t[0])).size).toBe(1);
    expect(t1[0]![0]).not.toBe(t2[0]![0]);
    expect(t1.map((t) => t.slice(1)).sort()).toEqual(["one0", "one1", "one2"]);
    expect(h.proxy.stats().udpFlows).toBe(2);
  });

  test("idle flows expire", async () => {
    const echo = await udpEcho();
    const h = harness([{ name: "idle", port: 53, protocol: "UDP", endpoints: [{ port: echo.port }] }], { udpIdleTimeoutMs: 200 });
    const { port } = await h.addr("idle", 53, "UDP");
    const { sock, got } = await udpClient();
    sock.send(new Uint8Array([1]), port, "127.0.0.1");
    await until(() => got.length === 1);
    expect(h.proxy.stats().udpFlows).toBe(1);
    await until(() => h.proxy.stats().udpFlows === 0, 2000);
    // A new datagram opens a new flow and is still answered.
    sock.send(new Uint8Array([2]), port, "127.0.0.1");
    await until(() => got.length === 2);
    expect(h.metrics.snapshot().proxy_udp_flows_total).toBe(2);
  });

  test("an endpoint answering with ICMP port unreachable does not take the proxy down", async () => {
    const gone = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const deadPort = gone.port;
    gone.close();
    const echo = await udpEcho();
    const h = harness([{ name: "icmp", port: 53, protocol: "UDP", endpoints: [{ port: deadPort }] }]);
    const { port } = await h.addr("icmp", 53, "UDP");
    const { sock } = await udpClient();
    for (let i = 0; i < 20; i++) {
      sock.send(new Uint8Array(100), port, "127.0.0.1");
      await Bun.sleep(5);
    }
    await until(() => (h.metrics.snapshot().proxy_udp_socket_errors_total ?? 0) > 0);
    // Still alive: point the service at a live endpoint and get answers.
    const { makeTable } = await import("./proxy-support.ts");
    h.table.publish(makeTable([{ name: "icmp", port: 53, protocol: "UDP", endpoints: [{ port: echo.port }] }]));
    const c = await udpClient();
    c.sock.send(new Uint8Array([9, 9]), port, "127.0.0.1");
    await until(() => c.got.length === 1);
    expect([...c.got[0]!]).toEqual([9, 9]);
  });
});
