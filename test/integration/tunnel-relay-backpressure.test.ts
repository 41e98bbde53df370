// What a relay holds while it forwards a relayed connection (src/tunnel/relay-backpressure.ts):
// circuit-relay-v2's own join kept every forwarded byte reachable until the connection ended;
// the splice keeps only what is in flight. Also: a reader that stops holds the sender back
// through the relay, and every byte still arrives intact.
import { afterEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import type { Stream } from "@libp2p/interface";
import { splice, type SpliceStream } from "../../src/tunnel/relay-backpressure.ts";
import { receiveBytes, stopAllTunnels, testTunnel } from "../support/tunnels.ts";

const MB = 1024 * 1024;

afterEach(stopAllTunnels);

/** A (sender) and B (reachable only through relay R), all in this process, on loopback. */
async function relayedPair(onStream: (stream: Stream) => void): Promise<Stream> {
  const r = testTunnel("relay", { isRelay: true });
  await r.tunnel.start();
  const relayAddr = r.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "");
  const relayNodes = [{ nodeName: "relay", advertiseAddress: [relayAddr] }];
  const b = testTunnel("node-b", { relayNodes, listenAddrs: [] });
  const a = testTunnel("node-a", { relayNodes });
  await b.tunnel.start();
  await a.tunnel.start();
  const deadline = Date.now() + 10_000;
  while (!b.tunnel.addrs().some((x) => x.includes("/p2p-circuit")) && Date.now() < deadline) await Bun.sleep(25);
  b.tunnel.handleProxy((_h, stream) => {
    onStream(stream);
    return true;
  });
  const { stream, relayed } = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.244.9.9", port: 80 });
  expect(relayed).toBe(true);
  return stream;
}

async function send(stream: Stream, piece: Uint8Array): Promise<void> {
  if (!stream.send(piece)) await new Promise((resolve) => stream.addEventListener("drain", resolve, { once: true }));
}

test("the relay does not keep forwarded bytes: after a full GC mid-transfer, little is reachable", async () => {
  const TOTAL = 160 * MB;
  let received = 0;
  const stream = await relayedPair((far) => far.addEventListener("message", (e) => void (received += e.data.byteLength)));
  const before = process.memoryUsage().arrayBuffers;
  let reachable = 0;
  for (let sent = 0; sent < TOTAL; sent += 64 * 1024) {
    await send(stream, new Uint8Array(64 * 1024));
    if (sent === TOTAL - 32 * MB) {
      Bun.gc(true); // everything not reachable goes; what the relay (and A, B) still hold stays
      reachable = process.memoryUsage().arrayBuffers - before;
    }
  }
  const end = Date.now() + 30_000;
  while (received < TOTAL && Date.now() < end) await Bun.sleep(10);
  expect(received).toBe(TOTAL);
  // In flight on the path: windows and write buffers of a few MiB. The library's join held the
  // whole 128 MiB sent so far.
  expect(reachable).toBeLessThan(48 * MB);
}, 60_000);

test("a reader that stops holds the sender back through the relay; nothing is lost", async () => {
  let far: Stream | undefined;
  const stream = await relayedPair((s) => {
    s.pause(); // B reads nothing for now
    far = s;
  });
  const hash = createHash("sha256");
  const piece = new Uint8Array(64 * 1024);
  let sent = 0;
  let blocked: Promise<unknown> | undefined;
  while (sent < 64 * MB) {
    piece.fill(sent / piece.length);
    hash.update(piece);
    sent += piece.length;
    if (!stream.send(piece.slice())) {
      blocked = new Promise((resolve) => stream.addEventListener("drain", resolve, { once: true }));
      if (!(await Promise.race([blocked.then(() => true), Bun.sleep(1500).then(() => false)]))) break;
      blocked = undefined;
    }
  }
  // Bounded by the windows and write buffers on the path (A, R's two streams, B): a few MiB.
  expect(sent).toBeLessThan(24 * MB);
  const got = receiveBytes(far!, sent);
  far!.resume();
  await blocked;
  expect(await got).toBe(hash.digest("hex"));
}, 60_000);

/** A stream double: records what the splice does to it. */
class FakeStream extends EventTarget implements SpliceStream {
  writeStatus = "writable";
  remoteWriteStatus = "writable";
  status = "open";
  full = false;
  readonly sent: unknown[] = [];
  readonly calls: string[] = [];
  send(data: unknown): boolean {
    if (this.writeStatus !== "writable") throw new Error("closed for writing");
    this.sent.push(data);
    return !this.full;
  }
  pause() {
    this.calls.push("pause");
  }
  resume() {
    this.calls.push("resume");
  }
  async close() {
    this.calls.push("close");
    this.writeStatus = "closed";
  }
  abort(err: Error) {
    this.calls.push(`abort:${err.message}`);
    this.status = "aborted";
  }
  emit(type: string, extra: object = {}) {
    this.dispatchEvent(Object.assign(new Event(type), extra));
  }
}

test("splice: forwards, pauses on a full side until drain, passes half-closes and resets, reports done once", () => {
  const a = new FakeStream();
  const b = new FakeStream();
  let done = 0;
  splice(a, b, () => done++);
  a.emit("message", { data: "x" });
  expect(b.sent).toEqual(["x"]);
  b.full = true;
  a.emit("message", { data: "y" });
  a.emit("message", { data: "z" }); // already paused: no second pause
  expect(a.calls).toEqual(["pause"]);
  b.full = false;
  b.emit("drain");
  expect(a.calls).toEqual(["pause", "resume"]);
  a.emit("remoteCloseWrite");
  expect(b.calls).toContain("close");
  a.emit("close");
  expect(done).toBe(0);
  b.emit("close", { error: new Error("reset by peer") });
  expect(a.calls).toContain("abort:reset by peer");
  expect(done).toBe(1);
  // A message for a side that cannot take bytes any more aborts the sender, never throws.
  const c = new FakeStream();
  const d = new FakeStream();
  splice(c, d, () => {});
  d.writeStatus = "closed";
  expect(() => c.emit("message", { data: "late" })).not.toThrow();
  expect(c.calls).toEqual(["abort:closed for writing"]);
});
