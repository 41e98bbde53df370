// Hole punching across two NATs with DCUtR over QUIC, made to work with js-libp2p's pieces.
//
// What stands in the way, and what this file does about it:
//  1. Our public address is never known: identify hands the relay's observation of us to the
//     address manager as an *unconfirmed* address (only AutoNAT would confirm it), and
//     DCUtR sends only confirmed addresses. A relay is a configured, trusted node, so when it
//     tells us, over a direct QUIC connection, that it sees us at NAT_IP:PORT, we confirm two
//     addresses: NAT_IP:listenPort (our listener behind a port-preserving NAT, which is where
//     peers must dial us) and NAT_IP:PORT itself (the NAT mapping of the QUIC *client* socket
//     every dial of ours leaves from, which is where a peer must punch to let our dial in).
//  2. js-libp2p-quic dials from that separate client socket, not from the listener, so two
//     QUIC dials crossing each other meet two client-only endpoints and nobody accepts. So when
//     DCUtR dials a peer's addresses, we split them: to the peer's client mapping we send raw
//     UDP punches from our listen port (udp-punch.ts), which opens our NAT for the peer's dial
//     into our listener; to the peer's listener we dial as usual. The peer does the same, so
//     both dials find an open door (each side ends with a direct connection).
//  3. DCUtR first tries a "unilateral" direct dial to the peer's public addresses. When the
//     peer advertises a client mapping it is behind a NAT, that dial cannot pass, and its
//     unanswered packets would leave a conntrack entry on the peer's NAT that collides with
//     the mapping the punch needs: skip it.
// A peer's client mapping is told apart from its listener by the port: every node of a cluster
// listens on the same modules.edgeTunnel.listenPort (as in EdgeMesh).

import type { Connection, Libp2pEvents, PeerId, TypedEventTarget } from "@libp2p/interface";
import type { AddressManager, ConnectionManager, TransportManager } from "@libp2p/interface-internal";
import { isPrivate } from "@libp2p/utils";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import { Circuit, QUIC_V1 } from "@multiformats/multiaddr-matcher";
import type { Logger } from "../log/index.ts";
import type { PunchSender } from "./udp-punch.ts";

/** Opens the raw punch sender at start (null: not available, DCUtR then dials as it would alone). */
export type PunchFactory = () => { send: PunchSender; close(): void } | null;

/** Circuit relay v2's hop protocol: a peer serving it is a relay node. */
export const RELAY_HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop";
/** Punches per DCUtR dial, spaced so one lands after the peer's NAT saw the peer's own dial
 * leave (the peer dials up to half an RTT later; QUIC resends its Initial after about 1 s). */
export const PUNCH_COUNT = 10;
export const PUNCH_INTERVAL_MS = 100;
/** After an upgrade DCUtR closes the relayed connection at once, which cuts the streams still
 * on it (a transfer in flight loses its tail). New streams already prefer the direct
 * connection, so we let the old ones finish first, checking at this interval, for at most
 * RELAYED_DRAIN_MAX_MS (a stream that lives longer is cut then). */
export const RELAYED_DRAIN_CHECK_MS = 250;
export const RELAYED_DRAIN_MAX_MS = 10 * 60_000;
const DCUTR_PROTOCOL = "/libp2p/dcutr";
/** DCUtR's own dials carry this priority; its unilateral attempt carries none. */
const DCUTR_DIAL_PRIORITY = 100;

export class HolePunchError extends Error {
  override readonly name = "HolePunchError";
}

interface UdpTarget {
  ip: string;
  port: number;
}

/** QUIC over public IPv4: the only kind of address this scheme can punch. */
function quicTarget(ma: Multiaddr): UdpTarget | undefined {
  if (Circuit.matches(ma) || !QUIC_V1.matches(ma)) return undefined;
  const c = ma.getComponents();
  const ip = c.find((x) => x.name === "ip4")?.value;
  const port = Number(c.find((x) => x.name === "udp")?.value);
  if (!ip || !Number.isInteger(port) || isPrivate(ma) === true) return undefined;
  return { ip, port };
}

/** From a trusted observation of our QUIC client socket: the addresses to confirm. */
export function addressesFromObservation(observed: Multiaddr, listenPort: number): { listen: Multiaddr; client: Multiaddr } | undefined {
  const t = quicTarget(observed);
  if (!t) return undefined;
  return {
    listen: multiaddr(`/ip4/${t.ip}/udp/${listenPort}/quic-v1`),
    client: multiaddr(`/ip4/${t.ip}/udp/${t.port}/quic-v1`),
  };
}

/** Splits a peer's addresses into QUIC dials (its listener) and punch targets (its client
 * mapping). Addresses of other transports are dropped: they cannot be punched here. */
export function planUpgrade(addrs: Multiaddr[], listenPort: number): { dial: Multiaddr[]; punch: UdpTarget[] } {
  const dial: Multiaddr[] = [];
  const punch: UdpTarget[] = [];
  for (const ma of addrs) {
    const t = quicTarget(ma);
    if (!t) continue;
    if (t.port === listenPort) dial.push(ma);
    else if (!punch.some((p) => p.ip === t.ip && p.port === t.port)) punch.push(t);
  }
  return { dial, punch };
}

/** Counted in place (metrics Counter objects, or plain { value } in tests). */
export interface HolePunchCounters {
  /** DCUtR dial steps we ran (punch + dial). */
  attempts: { value: number };
  /** Direct connections that DCUtR's dials (or a unilateral dial) opened. */
  upgrades: { value: number };
  /** Punch datagrams handed to the kernel. */
  punches: { value: number };
  /** Unilateral dials skipped because the peer is behind a NAT. */
  unilateralSkipped: { value: number };
}

export interface HolePunchInit {
  listenPort: number;
  punch: PunchFactory;
  /** Whose observation of our address we believe; default: peers that serve as relays. */
  isTrustedObserver?: (peer: PeerId, protocols: string[]) => boolean;
  log: Logger;
  counters?: HolePunchCounters;
  /** Timers, injectable for tests. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
}

export interface HolePunchComponents {
  addressManager: AddressManager;
  connectionManager: ConnectionManager;
  transportManager: TransportManager;
  events: TypedEventTarget<Libp2pEvents>;
}

type OpenOptions = Parameters<ConnectionManager["openConnection"]>[1];

/** The per-host hole-punch logic: address confirmation and DCUtR's dial step. */
export class HolePunch {
  readonly #o: HolePunchInit;
  readonly #c: HolePunchComponents;
  #client?: Multiaddr;
  readonly #mapped = new Set<string>();
  #sender: ReturnType<PunchFactory> = null;
  readonly counters: HolePunchCounters;

  constructor(components: HolePunchComponents, init: HolePunchInit) {
    this.#c = components;
    this.#o = init;
    this.counters = init.counters ?? { attempts: { value: 0 }, upgrades: { value: 0 }, punches: { value: 0 }, unilateralSkipped: { value: 0 } };
    this.onIdentify = this.onIdentify.bind(this);
  }

  readonly [Symbol.toStringTag] = "edgemesh/hole-punch";

  start(): void {
    this.#sender = this.#o.punch();
    if (!this.#sender) this.#o.log.warn("hole punching off: no raw socket (needs CAP_NET_RAW); peers behind two NATs stay relayed");
    this.#c.events.addEventListener("peer:identify", this.onIdentify);
  }

  stop(): void {
    this.#c.events.removeEventListener("peer:identify", this.onIdentify);
    this.#sender?.close();
    this.#sender = null;
  }

  onIdentify(evt: CustomEvent<{ peerId: PeerId; protocols: string[]; observedAddr?: Multiaddr; connection: Connection }>): void {
    const { peerId, protocols, observedAddr, connection } = evt.detail;
    if (!observedAddr || Circuit.matches(connection.remoteAddr)) return;
    const trusted = this.#o.isTrustedObserver ? this.#o.isTrustedObserver(peerId, protocols) : protocols.includes(RELAY_HOP_PROTOCOL);
    if (!trusted) return;
    const found = addressesFromObservation(observedAddr, this.#o.listenPort);
    if (!found) return;
    const am = this.#c.addressManager;
    // The listener's mapping, for every address our QUIC listener has (the NAT keeps the port).
    for (const local of this.#c.transportManager.getAddrs()) {
      const t = QUIC_V1.exactMatch(local) ? local.getComponents() : undefined;
      const ip = t?.find((x) => x.name === "ip4")?.value;
      if (!ip || Number(t!.find((x) => x.name === "udp")?.value) !== this.#o.listenPort) continue;
      const key = `${ip}>${observedIp(found.listen)}`;
      if (this.#mapped.has(key)) continue; // the address manager keeps duplicates
      this.#mapped.add(key);
      am.addPublicAddressMapping(ip, this.#o.listenPort, observedIp(found.listen), this.#o.listenPort, "udp");
    }
    am.confirmObservedAddr(found.listen);
    if (this.#client && !this.#client.equals(found.client)) am.removeObservedAddr(this.#client);
    if (!this.#client?.equals(found.client)) {
      this.#o.log.info("public QUIC address confirmed by a relay", { relay: peerId.toString(), listen: found.listen.toString(), client: found.client.toString() });
    }
    this.#client = found.client;
    am.confirmObservedAddr(found.client, { type: "observed" });
  }

  /** Stands in for connectionManager.openConnection in the DCUtR service. */
  openConnection(addrs: Multiaddr | Multiaddr[], options?: OpenOptions): Promise<Connection> {
    const list = Array.isArray(addrs) ? addrs : [addrs];
    const plan = planUpgrade(list, this.#o.listenPort);
    if (options?.priority !== DCUTR_DIAL_PRIORITY) {
      if (plan.punch.length > 0) {
        this.counters.unilateralSkipped.value++;
        return Promise.reject(new HolePunchError("unilateral upgrade skipped: the peer is behind a NAT (it advertises a client mapping)"));
      }
      return this.#c.connectionManager.openConnection(addrs, options).then((c) => this.#upgraded(c));
    }
    if (this.#sender) for (const t of plan.punch) this.#burst(t, PUNCH_COUNT);
    if (plan.dial.length === 0) return Promise.reject(new HolePunchError(`no QUIC listener address to dial among ${list.map(String).join(", ")}`));
    this.counters.attempts.value++;
    this.#o.log.info("hole punch: punching and dialing", { dial: plan.dial.map(String).join(","), punch: plan.punch.map((p) => `${p.ip}:${p.port}`).join(",") });
    return this.#c.connectionManager.openConnection(plan.dial, options).then((c) => this.#upgraded(c));
  }

  /** A direct connection is up: the relayed ones to that peer close once their streams end. */
  #upgraded(direct: Connection): Connection {
    this.counters.upgrades.value++;
    this.#o.log.info("hole punch: direct connection", { peer: direct.remotePeer.toString(), addr: direct.remoteAddr.toString() });
    for (const conn of this.#c.connectionManager.getConnections(direct.remotePeer)) {
      if (!Circuit.matches(conn.remoteAddr) || conn.status !== "open") continue;
      const close = conn.close.bind(conn);
      const deadline = Date.now() + RELAYED_DRAIN_MAX_MS;
      const timer = this.#o.setTimeout ?? setTimeout;
      const drainThenClose = (): void => {
        if (conn.status !== "open") return;
        const busy = conn.streams.some((st) => st.protocol !== DCUTR_PROTOCOL && (st.status === "open" || st.status === "closing"));
        if (busy && Date.now() < deadline) {
          timer(drainThenClose, RELAYED_DRAIN_CHECK_MS);
          return;
        }
        close().catch((err: Error) => conn.abort(err));
      };
      // DCUtR awaits this right after the upgrade; answer at once and close in the background.
      // Only this one call is deferred: a later close (shutdown, pruning) closes at once.
      conn.close = () => {
        conn.close = close;
        timer(drainThenClose, 0);
        return Promise.resolve();
      };
    }
    return direct;
  }

  #burst(t: UdpTarget, left: number): void {
    if (!this.#sender) return; // stopped
    if (this.#sender.send(this.#o.listenPort, t.ip, t.port)) this.counters.punches.value++;
    if (left > 1) (this.#o.setTimeout ?? setTimeout)(() => this.#burst(t, left - 1), PUNCH_INTERVAL_MS);
  }
}

function observedIp(ma: Multiaddr): string {
  return ma.getComponents().find((x) => x.name === "ip4")!.value!;
}
