// Tunnels for integration tests. Every tunnel test builds its nodes on loopback with the same
// options (TCP, a PSK, compat identity, no mDNS, relays or hole punching), so those defaults live
// here once and each test overrides only what it is about. Each tunnel is registered so that one
// stopAllTunnels() in afterEach/afterAll frees its ports and timers, also when a test fails.
import { createHash } from "node:crypto";
import type { Stream, StreamMessageEvent } from "@libp2p/interface";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { createTunnel, type Tunnel, type TunnelOptions } from "../../src/tunnel/index.ts";
import { createHost } from "../../src/tunnel/host.ts";

/** The pre-shared key test tunnels use unless a test passes another (or `psk: undefined`). */
export const TEST_PSK = new Uint8Array(32).fill(7);

export interface Stoppable {
  stop(): Promise<void>;
}

export interface TestTunnel {
  tunnel: Tunnel;
  log: ReturnType<typeof createMemoryLogger>;
  metrics: ReturnType<typeof createMetrics>;
}

const running: Stoppable[] = [];

/** A tunnel on 127.0.0.1 (not started), registered for stopAllTunnels(). */
export function testTunnel(nodeName: string, extra: Partial<TunnelOptions> = {}): TestTunnel {
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const tunnel = createTunnel({
    nodeName,
    listenPort: 0,
    listenAddrs: ["/ip4/127.0.0.1/tcp/0"],
    transport: "tcp",
    psk: TEST_PSK,
    identity: { mode: "compat" },
    relayNodes: [],
    mdns: false,
    rendezvous: "EDGEMESH_TEST",
    enableHolePunch: false,
    log,
    metrics,
    ...extra,
  });
  running.push(tunnel);
  return { tunnel, log, metrics };
}

/** Registers something else a test started (e.g. a bare libp2p host) to stop with the tunnels. */
export function stopWithTunnels(s: Stoppable): void {
  running.push(s);
}

/**
 * A bare libp2p host (no tunnel logic) with the test PSK, started and registered to stop with the
 * tunnels: for speaking raw bytes on the tunnel's protocols, or playing a peer that is not ours.
 */
export async function bareHost(listenAddrs: string[] = ["/ip4/127.0.0.1/tcp/0"]) {
  const counter = () => ({ name: "", help: "", labels: "", value: 0 });
  const host = await createHost({
    privateKey: await generateKeyPair("Ed25519"),
    listenAddrs,
    transport: "tcp",
    psk: TEST_PSK,
    isRelay: false,
    useRelays: false,
    mdns: false,
    rendezvous: "x",
    enableHolePunch: false,
    noiseAead: "auto",
    pnetCipher: "auto",
    maxStreamsPerPeer: 100,
    log: createMemoryLogger(),
    counters: { handshakeFailures: counter(), gaterDenied: counter(), pskMismatch: { key_differs: counter(), peer_without_psk: counter(), peer_with_psk: counter() } },
  });
  await host.start();
  stopWithTunnels({ stop: async () => await host.stop() });
  return host;
}

/** Stops every registered tunnel and host; failures to stop are ignored (cleanup only). */
export async function stopAllTunnels(): Promise<void> {
  await Promise.allSettled(running.splice(0).map((t) => t.stop()));
}

/** Resolves with the sha256 of the first `total` bytes received. */
export function receiveBytes(stream: Stream, total: number, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`received ${got}/${total} bytes`)), timeoutMs);
    const onMessage = (evt: StreamMessageEvent) => {
      for (const b of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
        const take = Math.min(b.length, total - got); // later bytes belong to the next reader
        hash.update(b.subarray(0, take));
        got += take;
      }
      if (got >= total) {
        clearTimeout(timer);
        stream.removeEventListener("message", onMessage);
        resolve(hash.digest("hex"));
      }
    };
    stream.addEventListener("message", onMessage);
  });
}
