// The js-libp2p node of bench/macro/libp2p-floor.ts: the modules and options src/tunnel/host.ts
// gives an agent's tunnel (TCP + circuit relay v2 transports, Noise, yamux with the same window and
// read buffer, the pnet PSK protector, identify, ping, DCUtR, mDNS, a /p2p-circuit listen address),
// as the packages ship them: none of host.ts's patches (yamux frames, Noise batching, the safe TCP
// dialer), @noble's ChaCha20-Poly1305 and XSalsa20 (no libsodium or OpenSSL mapped) unless
// FLOOR_NATIVE=1 (see startNode). The pnet
// protector is ours (src/tunnel/pnet.ts) because @libp2p/pnet is not among the mandated packages,
// and EdgeMesh's bed runs with a PSK. Two protocols: echo, and a sink for the bulk.
import { noise } from "@chainsafe/libp2p-noise";
import { defaultCrypto, pureJsCrypto } from "@chainsafe/libp2p-noise/crypto";
import { yamux } from "@chainsafe/libp2p-yamux";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { dcutr } from "@libp2p/dcutr";
import { identify } from "@libp2p/identify";
import type { Stream } from "@libp2p/interface";
import { mdns } from "@libp2p/mdns";
import { ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { createLibp2p, type Libp2p } from "libp2p";
import { STREAM_READ_BUFFER_BYTES, YAMUX_MAX_WINDOW_BYTES } from "../../src/tunnel/constants.ts";
import { defaultXSalsaXor, nobleXSalsaXor, pnetProtector } from "../../src/tunnel/pnet.ts";

export const ECHO = "/floor/echo/1.0.0";
export const SINK = "/floor/sink/1.0.0";
/** What src/tunnel gives yamux per peer with the default (unlimited) stream limits. */
const MAX_STREAMS = 2 * (1 << 20) + 64;
const PSK = new Uint8Array(32).fill(7);
/** Bulk write size: what one read of a busy TCP socket hands the agent. */
const BULK_CHUNK_BYTES = 64 * 1024;
/** A small request and its echoed response (wrk's GET and the test app's answer are ~100 bytes). */
const REQUEST_BYTES = 100;

/** native: Noise's AEAD and pnet's XSalsa20 bound to libsodium / OpenSSL as the agent binds them
 * (src/tunnel/noise.ts pickAead, pnet.ts defaultXSalsaXor), so the load moves as many bytes as the
 * agent's; else @noble's (pure JS, ~20x slower). */
export async function startNode(ip: string, port: number, native = false): Promise<Libp2p> {
  const aead = native ? (await import("../../src/tunnel/noise.ts")).pickAead("native").aead : pureJsCrypto;
  const node = await createLibp2p({
    privateKey: await generateKeyPair("Ed25519"),
    addresses: { listen: [`/ip4/${ip}/tcp/${port}`, "/p2p-circuit"] },
    transports: [circuitRelayTransport({ reservationCompletionTimeout: 10_000 }), tcp()],
    connectionEncrypters: [noise({ crypto: { ...defaultCrypto, chaCha20Poly1305Encrypt: aead.chaCha20Poly1305Encrypt, chaCha20Poly1305Decrypt: aead.chaCha20Poly1305Decrypt } })],
    streamMuxers: [
      yamux({
        maxInboundStreams: MAX_STREAMS,
        maxOutboundStreams: MAX_STREAMS,
        maxEarlyStreams: MAX_STREAMS,
        streamOptions: { maxStreamWindowSize: YAMUX_MAX_WINDOW_BYTES, maxReadBufferLength: STREAM_READ_BUFFER_BYTES },
      } as Parameters<typeof yamux>[0]),
    ],
    connectionProtector: pnetProtector(PSK, undefined, native ? defaultXSalsaXor() : nobleXSalsaXor),
    peerDiscovery: [mdns({ serviceTag: "floor.local" })],
    connectionManager: { maxConnections: 1024 },
    services: { identify: identify(), ping: ping(), dcutr: dcutr() },
  });
  const opts = { maxInboundStreams: 2 * MAX_STREAMS, maxOutboundStreams: 2 * MAX_STREAMS, runOnLimitedConnection: true };
  await node.handle(ECHO, (stream: Stream) => {
    stream.addEventListener("message", (e) => void stream.send(e.data));
    stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}));
  }, opts);
  await node.handle(SINK, (stream: Stream) => {
    stream.addEventListener("message", () => {});
    stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}));
  }, opts);
  return node;
}

/** Resolves on the stream's next "drain" (or close): libp2p 3's onDrain() resolves only once. */
function drained(stream: Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.removeEventListener("drain", done);
      stream.removeEventListener("close", done);
      resolve();
    };
    stream.addEventListener("drain", done);
    stream.addEventListener("close", done);
  });
}

/** Sends `buf` and resolves when as many bytes came back (an echo stream). */
function echoer(stream: Stream): (buf: Uint8Array) => Promise<void> {
  let want = 0;
  let got = 0;
  let wake: (() => void) | undefined;
  stream.addEventListener("message", (e) => {
    got += e.data.byteLength;
    if (got >= want && wake) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  stream.addEventListener("close", () => wake?.());
  return async (buf) => {
    want += buf.byteLength;
    if (!stream.send(buf)) await drained(stream);
    if (got < want) await new Promise<void>((r) => (wake = r));
    if (stream.status !== "open") throw new Error(`echo stream ${stream.status}`);
  };
}

export async function openEcho(node: Libp2p, addr: string): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(addr), ECHO);
  await echoer(stream)(new Uint8Array(REQUEST_BYTES));
  await stream.close();
}

/** Bulk over one stream, then `streams` streams of request/response, `seconds` each. */
export async function load(node: Libp2p, addr: string, seconds: number, streams: number): Promise<{ bulkGbps: number; requests: number }> {
  const target = multiaddr(addr);
  const sink = await node.dialProtocol(target, SINK);
  let sent = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    // A new buffer per chunk, as a socket read gives the agent one.
    if (!sink.send(Buffer.allocUnsafe(BULK_CHUNK_BYTES))) await drained(sink);
    sent += BULK_CHUNK_BYTES;
  }
  await sink.close();
  const bulkGbps = Math.round(((sent * 8) / ((performance.now() - t0) / 1000) / 1e9) * 100) / 100;

  const open = await Promise.all(Array.from({ length: streams }, () => node.dialProtocol(target, ECHO)));
  let requests = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(open.map(async (s) => {
    const ask = echoer(s);
    while (performance.now() < end) {
      await ask(Buffer.allocUnsafe(REQUEST_BYTES));
      requests++;
    }
    await s.close();
  }));
  return { bulkGbps, requests };
}
