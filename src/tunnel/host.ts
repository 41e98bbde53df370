// Builds the libp2p node: transports, Noise (Bun-safe AEAD), yamux, the pnet protector when a
// PSK is set, identify, ping, circuit relay v2 (an unlimited server on relay nodes, reservations
// elsewhere), DCUtR with QUIC hole punching (holepunch.ts), mDNS, and the secure-mode gater.
// Pure wiring; no tunnel logic here.
import { yamux } from "@chainsafe/libp2p-yamux";
import { circuitRelayServer, circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { dcutr } from "@libp2p/dcutr";
import { identify } from "@libp2p/identify";
import type { ConnectionGater, PeerId, PrivateKey } from "@libp2p/interface";
import { mdns } from "@libp2p/mdns";
import { ping } from "@libp2p/ping";
import { createLibp2p, type Libp2p, type Libp2pOptions } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { Counter } from "../metrics/index.ts";
import { STREAM_READ_BUFFER_BYTES, YAMUX_MAX_WINDOW_BYTES } from "./constants.ts";
import { noiseForBun, type NoiseAead } from "./noise.ts";
import { defaultXSalsaXor, nobleXSalsaXor, plaintextProtector, pnetProtector, type PskMismatchReason } from "./pnet.ts";
import { safeTcp } from "./tcp-dial.ts";
import { installQuicReadBackpressure } from "./quic-backpressure.ts";
import { installRelayBackpressure } from "./relay-backpressure.ts";
import { installYamuxHalfWindowUpdates } from "./yamux-window.ts";
import { installYamuxFastSend } from "./yamux-send.ts";
import { installYamuxFrames } from "./yamux-frames.ts";
import { HolePunch, type HolePunchComponents, type HolePunchCounters } from "./holepunch.ts";
import { createRawPunchSender } from "./udp-punch.ts";

export type TransportKind = "tcp" | "quic" | "both";

export interface HostOptions {
  privateKey: PrivateKey;
  listenAddrs: string[];
  transport: TransportKind;
  psk?: Uint8Array;
  isRelay: boolean;
  /** Keep reservations on relays (adds the "/p2p-circuit" listen address). */
  useRelays: boolean;
  /**
   * How many relays to hold a reservation on at once (one "/p2p-circuit" listen address each;
   * default 1). With two, a relay that dies leaves the node reachable through the other at
   * once, instead of only after it noticed and made a new reservation.
   */
  relayReservations?: number;
  mdns: boolean;
  rendezvous: string;
  enableHolePunch: boolean;
  noiseAead: NoiseAead;
  pnetCipher: "auto" | "js";
  maxStreamsPerPeer: number;
  /** Whose observation of our address (identify) we confirm as public; default: relay nodes. */
  isTrustedObserver?: (peer: PeerId, protocols: string[]) => boolean;
  /** Secure mode: only these peer IDs may connect (relays included); undefined = anyone. */
  isAllowed?: (peer: PeerId) => boolean;
  /** Dials to this peer are refused for now (a relay in quarantine after going silent). */
  isDialBlocked?: (peer: PeerId) => boolean;
  /** Called for every refusal by isAllowed (after counting); default: one log line each. */
  onRefused?: (peer: PeerId, direction: "dial" | "inbound" | "outbound") => void;
  log: Logger;
  counters: { handshakeFailures: Counter; gaterDenied: Counter; pskMismatch: Record<PskMismatchReason, Counter> };
  /** Hole-punch attempts, upgrades, punches, skipped unilateral dials (kept locally if unset). */
  holePunchCounters?: HolePunchCounters;
}

export async function createHost(o: HostOptions): Promise<Libp2p> {
  installYamuxHalfWindowUpdates(); // go-yamux's window-update pacing (see yamux-window.ts)
  installYamuxFastSend(); // one frame per send without the queue's copies and events (yamux-send.ts)
  installYamuxFrames(); // frames decoded in place, streams found by id (yamux-frames.ts)
  const transports: NonNullable<Libp2pOptions["transports"]> = [circuitRelayTransport({ reservationCompletionTimeout: 10_000 })];
  if (o.transport !== "quic") transports.push(safeTcp());
  // libp2p-quic is built against another copy of @libp2p/interface; the shapes match at runtime.
  // Loaded only when used: a TCP-only node (the default, and every PSK network) need not map
  // its native module (measured: ~1 MiB of RSS).
  if (o.transport !== "tcp") {
    const { quic } = await import("@chainsafe/libp2p-quic");
    await installQuicReadBackpressure(); // a paused QUIC stream stops reading (see quic-backpressure.ts)
    transports.push(quic() as unknown as (typeof transports)[number]);
  }

  const services: Record<string, (components: any) => unknown> = {
    identify: identify(),
    ping: ping(),
  };
  if (o.enableHolePunch) Object.assign(services, holePunchServices(o));
  if (o.isRelay) {
    await installRelayBackpressure(); // a slow destination holds the source back (see relay-backpressure.ts)
    // EdgeMesh runs its relay with infinite resources; v2's defaults (128 KiB, 2 min per relayed
    // connection) would cut every proxied stream.
    services.relay = circuitRelayServer({
      // Every node may hold a reservation here (each holds up to two relays, relayReservations):
      // room for a few thousand nodes, a reservation being a map entry and a refresh timer.
      reservations: { applyDefaultLimit: false, maxReservations: 4096 },
      maxInboundHopStreams: 4096,
      maxOutboundHopStreams: 4096,
      maxOutboundStopStreams: 4096,
    });
  }

  const listen = [...o.listenAddrs];
  if (o.useRelays) for (let i = 0; i < Math.max(1, o.relayReservations ?? 1); i++) listen.push("/p2p-circuit");

  return createLibp2p({
    start: false,
    privateKey: o.privateKey,
    addresses: { listen },
    transports,
    connectionEncrypters: [noiseForBun({ aead: o.noiseAead, pskEnabled: o.psk !== undefined, log: o.log, failures: o.counters.handshakeFailures })],
    // maxEarlyStreams: a burst of proxy streams to a peer with no connection yet opens them all
    // on the fresh connection; past the default 10 that arrive before the far side listens,
    // yamux aborts the whole connection.
    streamMuxers: [
      yamux({
        maxInboundStreams: o.maxStreamsPerPeer,
        maxOutboundStreams: o.maxStreamsPerPeer,
        maxEarlyStreams: o.maxStreamsPerPeer,
        // While a stream is paused the peer may still send one full window; if that exceeds
        // the read buffer, libp2p resets the stream. Keep the window below the buffer.
        streamOptions: { maxStreamWindowSize: YAMUX_MAX_WINDOW_BYTES, maxReadBufferLength: STREAM_READ_BUFFER_BYTES },
      } as Parameters<typeof yamux>[0]),
    ],
    // Without a PSK, a protector that only checks each connection's first bytes, so that a peer
    // with a PSK is counted on this side too (see plaintextProtector).
    connectionProtector: o.psk
      ? pnetProtector(o.psk, (remote, reason) => pskMismatch(o, remote, reason), o.pnetCipher === "js" ? nobleXSalsaXor : defaultXSalsaXor())
      : plaintextProtector((remote, reason) => pskMismatch(o, remote, reason)),
    connectionGater: gater(o),
    peerDiscovery: o.mdns ? [mdns({ serviceTag: `${o.rendezvous}.local` })] : [],
    connectionManager: { maxConnections: 1024 },
    services,
  }) as Promise<Libp2p>;
}

/**
 * DCUtR, plus what makes it work here (holepunch.ts): our relay-observed public QUIC address
 * confirmed, and DCUtR's dials split into raw punches and QUIC dials. Without QUIC (TCP cannot
 * dial from its listen port) DCUtR runs as shipped.
 */
function holePunchServices(o: HostOptions): Record<string, (components: any) => unknown> {
  const listenPort = quicListenPort(o.listenAddrs);
  if (o.transport === "tcp" || listenPort === undefined) return { dcutr: dcutr() };
  let hp: HolePunch | undefined;
  const get = (c: HolePunchComponents) =>
    (hp ??= new HolePunch(c, { listenPort, punch: createRawPunchSender, isTrustedObserver: o.isTrustedObserver, counters: o.holePunchCounters, log: o.log.child("holepunch") }));
  return {
    holePunch: (c: HolePunchComponents) => get(c),
    // DCUtR gets our dial step in place of the connection manager (it calls only openConnection).
    dcutr: (c: any) =>
      dcutr()({
        logger: c.logger,
        peerStore: c.peerStore,
        registrar: c.registrar,
        addressManager: c.addressManager,
        transportManager: c.transportManager,
        connectionManager: { openConnection: (addrs: any, opts: any) => get(c).openConnection(addrs, opts) },
      } as Parameters<ReturnType<typeof dcutr>>[0]),
  };
}

/** The port of our first QUIC listen address (all nodes of a cluster share listenPort). */
export function quicListenPort(listenAddrs: string[]): number | undefined {
  for (const a of listenAddrs) {
    const m = /\/udp\/(\d+)\/quic-v1/.exec(a);
    if (m && m[1] !== "0") return Number(m[1]);
  }
  return undefined;
}

export const REFUSAL_LINE = "connection refused: peer ID is not in the allowed list (secure mode)";

function gater(o: HostOptions): ConnectionGater {
  // Edge nodes talk over private LAN addresses (and tests over loopback): never deny by address.
  const deny = (peer: PeerId, dir: "dial" | "inbound" | "outbound"): boolean => {
    if (!o.isAllowed || o.isAllowed(peer)) return false;
    o.counters.gaterDenied.value++;
    if (o.onRefused) o.onRefused(peer, dir);
    else o.log.warn(REFUSAL_LINE, { peer: peer.toString(), direction: dir });
    return true;
  };
  return {
    denyDialMultiaddr: () => false,
    // A quarantined relay fails the dial at once, so a circuit dial or a reservation moves on
    // to the next relay instead of waiting out the address timeout on a dead one.
    denyDialPeer: (peer) => o.isDialBlocked?.(peer) === true || deny(peer, "dial"),
    denyInboundEncryptedConnection: (peer) => deny(peer, "inbound"),
    denyOutboundEncryptedConnection: (peer) => deny(peer, "outbound"),
  };
}

const PSK_MISMATCH_WHY: Record<PskMismatchReason, string> = {
  key_differs: "the peer's bytes do not decrypt with our pre-shared key (peers must share modules.edgeTunnel.psk)",
  peer_without_psk: "the peer has no pre-shared key and this node has one (set the same modules.edgeTunnel.psk on every node)",
  peer_with_psk: "the peer uses a pre-shared key and this node has none (set the same modules.edgeTunnel.psk on every node)",
};

function pskMismatch(o: HostOptions, remote: string, reason: PskMismatchReason): void {
  o.counters.pskMismatch[reason].value++;
  o.log.warn(`connection refused: PSK mismatch, ${PSK_MISMATCH_WHY[reason]}`, { remote, reason });
}
