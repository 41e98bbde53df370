// QUIC transport: two tunnels on 127.0.0.1 over /udp/.../quic-v1 carry a proxy stream both ways.
// (@chainsafe/libp2p-quic 2.x; 1.x failed at listen against multiaddr 13.)
import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import type { StreamMessageEvent } from "@libp2p/interface";
import { STREAM_READ_BUFFER_BYTES, type Tunnel, type TunnelStream } from "../../src/tunnel/index.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";

afterAll(stopAllTunnels);

/** No PSK: a private network cannot run over QUIC. */
function quicTunnel(nodeName: string): Tunnel {
  return testTunnel(nodeName, { listenAddrs: ["/ip4/127.0.0.1/udp/0/quic-v1"], transport: "quic", psk: undefined }).tunnel;
}

test("a proxy stream over QUIC echoes 8 MiB intact", async () => {
  const a = quicTunnel("quic-a");
  const b = quicTunnel("quic-b");
  await a.start();
  await b.start();
  expect(b.addrs().some((addr) => addr.includes("/quic-v1/"))).toBe(true);
  b.handleProxy((header, stream) => {
    expect(header.ip).toBe("10.0.0.9");
    stream.addEventListener("message", (e: StreamMessageEvent) => {
      for (const chunk of e.data instanceof Uint8Array ? [e.data] : e.data) stream.send(chunk.slice());
    });
    return true;
  });
  await a.addPeer("quic-b", undefined, b.addrs());
  const { stream } = await a.openProxyStream("quic-b", { protocol: "tcp", ip: "10.0.0.9", port: 80 });

  const total = 8 * 1024 * 1024;
  const sent = createHash("sha256");
  const received = createHash("sha256");
  let got = 0;
  const done = new Promise<void>((resolve) =>
    stream.addEventListener("message", (e: StreamMessageEvent) => {
      for (const chunk of e.data instanceof Uint8Array ? [e.data] : e.data) received.update(chunk);
      got += e.data.byteLength;
      if (got >= total) resolve();
    }),
  );
  for (let off = 0; off < total; off += 64 * 1024) {
    const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
    sent.update(chunk);
    if (!stream.send(chunk)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
  }
  await done;
  expect(got).toBe(total);
  expect(received.digest("hex")).toBe(sent.digest("hex"));
}, 60_000);

test("bulk reads grow past libp2p-quic's 4 KiB and small messages still arrive whole", async () => {
  const a = quicTunnel("quic-ra");
  const b = quicTunnel("quic-rb");
  await a.start();
  await b.start();
  let got = 0;
  let largest = 0;
  b.handleProxy((_header, stream) => {
    stream.addEventListener("message", (e: StreamMessageEvent) => {
      got += e.data.byteLength;
      largest = Math.max(largest, e.data.byteLength);
      if (e.data.byteLength === 5) stream.send(e.data); // the small echo below
    });
    return true;
  });
  await a.addPeer("quic-rb", undefined, b.addrs());
  const { stream } = await a.openProxyStream("quic-rb", { protocol: "tcp", ip: "10.0.0.9", port: 80 });
  const total = 16 * 1024 * 1024;
  const chunk = new Uint8Array(64 * 1024);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!stream.send(chunk)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
  }
  for (let i = 0; i < 300 && got < total; i++) await Bun.sleep(20);
  expect(got).toBe(total);
  expect(largest).toBeGreaterThan(4096);

  // After the bulk phase the read size shrinks back: a 5-byte message still arrives as itself.
  const echoes: number[] = [];
  stream.addEventListener("message", (e: StreamMessageEvent) => void echoes.push(e.data.byteLength));
  for (let i = 0; i < 20; i++) {
    stream.send(new TextEncoder().encode("hello"));
    for (let j = 0; j < 100 && echoes.length <= i; j++) await Bun.sleep(5);
  }
  expect(echoes.reduce((x, y) => x + y, 0)).toBe(100);
}, 60_000);

test("close() right after a burst of sends delivers every byte, then the far end sees the close", async () => {
  const a = quicTunnel("quic-ca");
  const b = quicTunnel("quic-cb");
  await a.start();
  await b.start();
  let got = 0;
  const ended = new Promise<void>((resolve) =>
    b.handleProxy((_header, stream) => {
      stream.addEventListener("message", (e: StreamMessageEvent) => void (got += e.data.byteLength));
      stream.addEventListener("remoteCloseWrite", () => resolve());
      return true;
    }),
  );
  await a.addPeer("quic-cb", undefined, b.addrs());
  const { stream } = await a.openProxyStream("quic-cb", { protocol: "tcp", ip: "10.0.0.9", port: 80 });
  // 32 KiB sends never wait for 'drain' unless told to: several queue behind one native write.
  const total = 4 * 1024 * 1024;
  let queuedWithoutWait = 0;
  for (let sent = 0; sent < total; sent += 32 * 1024) {
    if (stream.send(new Uint8Array(32 * 1024).fill(sent & 0xff))) queuedWithoutWait++;
    else await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
  }
  await stream.close();
  await ended;
  expect(got).toBe(total);
  expect(queuedWithoutWait).toBeGreaterThan(0);
}, 60_000);

test("a far reset while the sender is held back by flow control ends its close() instead of leaving it waiting", async () => {
  const a = quicTunnel("quic-xa");
  const b = quicTunnel("quic-xb");
  await a.start();
  await b.start();
  let far: TunnelStream | undefined;
  b.handleProxy((_header, stream) => {
    far = stream;
    stream.pause(); // nothing is read: the sender's writes back up behind QUIC flow control
    return true;
  });
  await a.addPeer("quic-xb", undefined, b.addrs());
  const { stream } = await a.openProxyStream("quic-xb", { protocol: "tcp", ip: "10.0.0.9", port: 80 });
  // Send until QUIC flow control stops the native write (no 'drain' for 300 ms): a write is
  // stuck in flight with more queued behind it.
  const chunk = new Uint8Array(64 * 1024);
  let stuck = false;
  for (let i = 0; i < 2000 && !stuck; i++) {
    if (stream.send(chunk)) continue;
    const drained = new Promise<boolean>((r) => stream.addEventListener("drain", () => r(true), { once: true }));
    stuck = !(await Promise.race([drained, Bun.sleep(300).then(() => false)]));
  }
  expect(stuck).toBe(true);
  expect(far).toBeDefined();
  const closing = stream.close().then(
    () => "closed",
    () => "rejected",
  );
  far!.abort(new Error("far end gives up"));
  const outcome = await Promise.race([closing, Bun.sleep(5000).then(() => "hung")]);
  expect(outcome).not.toBe("hung");
}, 30_000);

test("a paused QUIC stream holds the sender back (flow control) instead of overflowing its read buffer", async () => {
  const a = quicTunnel("quic-pa");
  const b = quicTunnel("quic-pb");
  await a.start();
  await b.start();
  let far: TunnelStream | undefined;
  let got = 0;
  b.handleProxy((_header, stream) => {
    far = stream;
    stream.pause(); // a slow reader: the splice pauses while its socket is backed up
    stream.addEventListener("message", (e: StreamMessageEvent) => void (got += e.data.byteLength));
    return true;
  });
  await a.addPeer("quic-pb", undefined, b.addrs());
  const { stream } = await a.openProxyStream("quic-pb", { protocol: "tcp", ip: "10.0.0.9", port: 80 });

  // More than the 6 MiB read buffer: without backpressure the far stream would be reset.
  const total = 3 * STREAM_READ_BUFFER_BYTES;
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  const sending = (async () => {
    while (sent < total) {
      sent += chunk.length;
      if (!stream.send(chunk)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
    }
  })();
  await Bun.sleep(1500);
  expect(far).toBeDefined();
  expect(far!.status).toBe("open");
  expect(got).toBe(0);
  expect(far!.readBufferLength).toBeLessThan(STREAM_READ_BUFFER_BYTES);
  expect(sent).toBeLessThan(total); // the sender is held back

  far!.resume();
  await sending;
  for (let i = 0; i < 300 && got < total; i++) await Bun.sleep(20);
  expect(got).toBe(total);
  expect(far!.status).toBe("open");
}, 60_000);
