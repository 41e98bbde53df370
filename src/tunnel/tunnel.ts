// createTunnel: the agent's libp2p side. Identity (compat or secure), relays (kept connected
// with backoff), discovery, and proxy streams. Splicing payload is not done here: after the
// header exchange a stream belongs to the hot path.
//
// The stream the hot path gets is libp2p 3's `Stream` (@libp2p/interface, a MessageStream):
//  - read: addEventListener("message", (e) => e.data) where data is Uint8Array | Uint8ArrayList
//    (usually a Uint8ArrayList: iterate it or call .subarray()). Bytes that arrive before a
//    listener is attached are buffered in the stream (up to maxReadBufferLength, 4 MiB, then
//    the stream is reset) and dispatched when the first listener is added.
//  - backpressure on reading: pause() / resume(). yamux tells the peer to stop; QUIC ignores it,
//    so bound what is in flight on QUIC yourself.
//  - write: send(buf) returns false when the stream's write buffer is full: stop and wait for
//    the "drain" event (an event, not onDrain(), which in libp2p 3 resolves only once).
//  - end of input: "remoteCloseWrite" (peer half-closed) then "end"; if they may have fired before
//    you attached, read stream.remoteWriteStatus === "closed" / stream.readableEnded.
//  - close(): half-close our side; resolves when handed to the transport, not when delivered.
//    abort(err): reset both ways. "close" event: the stream is finished (evt.error if reset).
//  - send() may keep a reference to the buffer until it is written: do not reuse it.
//  - never throw from a 'message' listener: the exception escapes into yamux and kills the
//    stream (and can take the connection with it).
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import type { PeerId } from "@libp2p/interface";
import type { Logger } from "../log/index.ts";
import type { Counter } from "../metrics/index.ts";
import { multiaddr } from "@multiformats/multiaddr";
import type { Libp2p } from "libp2p";
import { CniService } from "./cni.ts";
import { CNI_PROTOCOL, DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_PEER, DISCOVERY_PROTOCOL, PROXY_PROTOCOL } from "./constants.ts";
import { DiscoveryService } from "./discovery.ts";
import { TunnelError } from "./errors.ts";
import { createHost, REFUSAL_LINE } from "./host.ts";
import { skipRepeatedProtocolMerges } from "./peerstore-cache.ts";
import { loadOrCreateKey, privateKeyFromNodeName } from "./identity.ts";
import { PeerBook } from "./peers.ts";
import { PSK_MISMATCH_REASONS, type PskMismatchReason } from "./pnet.ts";
import { ProxyService } from "./proxy.ts";
import { RelayKeeper } from "./relay-keeper.ts";
import type { CniHandler, OpenedCniStream, OpenedProxyStream, OpenProxyStreamOptions, PeerInfo, ProxyHandler, ProxyTarget, RelayNode, Tunnel, TunnelOptions } from "./types.ts";

export function createTunnel(options: TunnelOptions): Tunnel {
  return new EdgeTunnel(options);
}

class EdgeTunnel implements Tunnel {
  readonly #o: TunnelOptions;
  readonly #book: PeerBook;
  readonly #log;
  #libp2p?: Libp2p;
  #proxy?: ProxyService;
  #discovery?: DiscoveryService;
  #handler?: ProxyHandler;
  #cni?: CniService;
  #cniHandler?: CniHandler;
  #peerId = "";
  #allowed?: Set<string>;
  /** setAllowedPeers before start(): applied when the allowed set is built. */
  #pendingAllowed?: string[];
  #relays?: RelayKeeper;

  constructor(o: TunnelOptions) {
    this.#o = o;
    this.#book = new PeerBook(o.identity.mode === "compat", o.listenPort, o.transport);
    this.#log = o.log.child("tunnel");
  }

  get peerId(): string {
    return this.#peerId;
  }

  async start(): Promise<void> {
    const o = this.#o;
    // QUIC brings its own TLS and no libp2p connection protector can wrap it, so a private
    // network cannot run over it (go-libp2p refuses the combination too).
    let transport = o.transport;
    if (o.psk && transport === "quic") throw new TunnelError("BAD_CONFIG", "a PSK (private network) cannot run over QUIC: use transport tcp or disable psk");
    if (o.psk && transport === "both") {
      this.#log.warn("PSK set: QUIC disabled, a private network runs over TCP only");
      transport = "tcp";
    }
    const key = o.identity.mode === "compat" ? await privateKeyFromNodeName(o.nodeName) : await loadOrCreateKey(o.identity.keyFile);
    this.#peerId = peerIdFromPrivateKey(key).toString();
    await this.#book.setRelays(o.relayNodes);
    if (o.identity.mode === "secure") {
      this.#allowed = new Set([this.#peerId, ...(o.identity.allowedPeers ?? []), ...(this.#pendingAllowed ?? [])]);
      for (const r of this.#book.relays) if (r.peerId) this.#allowed.add(r.peerId);
    }
    const isRelay = o.isRelay ?? o.relayNodes.some((r) => r.nodeName === o.nodeName);
    const maxStreamsPerPeer = o.maxStreamsPerPeer ?? DEFAULT_MAX_STREAMS_PER_PEER;
    const m = o.metrics;
    const libp2p = await createHost({
      privateKey: key,
      listenAddrs: (o.listenAddrs ?? defaultListen(o.listenPort, transport)).filter((a) => transport !== "tcp" || !a.includes("/quic")),
      transport,
      psk: o.psk,
      isRelay,
      useRelays: !isRelay, // always: relayNodes may be given later (setRelayNodes)
      // Two relays reserved when two or more are configured at start (relays given later by
      // setRelayNodes get one), so a dead relay is not the only way in.
      relayReservations: Math.min(2, Math.max(1, this.#book.relays.filter((r) => r.nodeName !== o.nodeName).length)),
      mdns: o.mdns,
      rendezvous: o.rendezvous,
      enableHolePunch: o.enableHolePunch,
      noiseAead: o.noiseAead ?? "auto",
      pnetCipher: o.pnetCipher ?? "auto",
      // TCP and UDP proxy streams have a budget each, plus room for discovery/identify/relay streams.
      maxStreamsPerPeer: 2 * maxStreamsPerPeer + 64,
      isAllowed: this.#allowed ? (p) => this.#allowed!.has(p.toString()) : undefined,
      isDialBlocked: (p) => this.#relays?.isBlocked(p.toString()) === true,
      // Our public (NAT-mapped) address is taken only from the relays we were configured with:
      // any peer can claim to serve the hop protocol and report a false address.
      isTrustedObserver: (p) => this.#book.relays.some((r) => r.peerId === p.toString()),
      holePunchCounters: {
        attempts: m.counter("tunnel_holepunch_attempts_total", "DCUtR hole-punch dial steps run (punch + dial)"),
        upgrades: m.counter("tunnel_holepunch_upgrades_total", "Relayed peers upgraded to a direct connection"),
        punches: m.counter("tunnel_holepunch_punch_datagrams_total", "Hole-punch datagrams sent from the QUIC listen port"),
        unilateralSkipped: m.counter("tunnel_holepunch_unilateral_skipped_total", "Direct dials skipped because the peer is behind a NAT"),
      },
      // An unknown peer on the LAN is re-announced by mDNS and re-dials us: one line per peer
      // per interval, not one per attempt (every attempt is still counted).
      onRefused: refusalLogger(this.#log, o.refusedLogIntervalMs ?? REFUSED_LOG_INTERVAL_MS),
      log: this.#log,
      counters: {
        handshakeFailures: m.counter("tunnel_handshake_failures_total", "Connections whose Noise handshake failed (PSK mismatch?)"),
        gaterDenied: m.counter("tunnel_gater_denied_total", "Connections refused because the peer ID is not allowed"),
        pskMismatch: Object.fromEntries(PSK_MISMATCH_REASONS.map((reason) => [reason, m.counter("tunnel_psk_mismatch_total", "Connections refused because the peer does not share our pre-shared key, by reason", { reason })])) as Record<PskMismatchReason, Counter>,
      },
    });
    this.#libp2p = libp2p;
    skipRepeatedProtocolMerges(libp2p); // libp2p re-writes "peer speaks P" on every stream
    const common = { libp2p, book: this.#book, log: this.#log, metrics: m };
    this.#proxy = new ProxyService({ ...common, maxStreams: o.maxStreams ?? DEFAULT_MAX_STREAMS, maxStreamsPerPeer, extensions: o.extensions });
    if (this.#handler) this.#proxy.handler = this.#handler;
    this.#discovery = new DiscoveryService({ ...common, nodeName: o.nodeName });
    // Per connection, before the header says TCP or UDP: both budgets' worth.
    const streamOpts = { maxInboundStreams: 2 * maxStreamsPerPeer, maxOutboundStreams: 2 * maxStreamsPerPeer, runOnLimitedConnection: true };
    await libp2p.handle(PROXY_PROTOCOL, this.#proxy.onStream, streamOpts);
    await libp2p.handle(DISCOVERY_PROTOCOL, this.#discovery.onStream, { runOnLimitedConnection: true });
    this.#cni = new CniService(common);
    this.#cni.handler = this.#cniHandler;
    await libp2p.handle(CNI_PROTOCOL, this.#cni.onStream, streamOpts);
    libp2p.addEventListener("peer:discovery", (evt) => {
      const { id, multiaddrs } = evt.detail;
      // Addresses are kept even for a peer not (yet) allowed: its publication may arrive a moment
      // later, and then a dial needs them. The handshake dial waits for that: the gater would
      // refuse it, on every mDNS announcement.
      void libp2p.peerStore.merge(id, { multiaddrs }).catch(() => {});
      if (this.#allowed && !this.#allowed.has(id.toString())) return;
      void this.#discovery!.handshake(id, "MDNS");
    });
    libp2p.addEventListener("peer:identify", (evt) => {
      const { peerId, protocols, connection } = evt.detail;
      if (this.#book.nodeOf(peerId.toString()) || !protocols.includes(DISCOVERY_PROTOCOL)) return;
      void this.#discovery!.handshake(peerId, connection.remoteAddr.toString().includes("/p2p-circuit") ? "DHT" : "MDNS");
    });
    await libp2p.start();
    this.#log.info("tunnel started", { peerId: this.#peerId, relay: isRelay, psk: o.psk !== undefined, mode: o.identity.mode, addrs: this.addrs().join(",") });
    this.#relays = new RelayKeeper({ libp2p, book: this.#book, nodeName: o.nodeName, selfPeerId: this.#peerId, log: this.#log, metrics: m });
    this.#relays.start();
  }

  async stop(): Promise<void> {
    this.#relays?.stop();
    await this.#libp2p?.stop();
  }

  addrs(): string[] {
    return this.#libp2p?.getMultiaddrs().map(String) ?? [];
  }

  openProxyStream(node: string, target: ProxyTarget, options?: OpenProxyStreamOptions): Promise<OpenedProxyStream> {
    if (!this.#proxy) return Promise.reject(new TunnelError("CLOSED", "tunnel not started"));
    return this.#proxy.open(node, target, options?.signal, options?.early);
  }

  handleProxy(handler: ProxyHandler): void {
    this.#handler = handler;
    if (this.#proxy) this.#proxy.handler = handler;
  }

  openCniStream(node: string, features: number, signal?: AbortSignal): Promise<OpenedCniStream> {
    if (!this.#cni) return Promise.reject(new TunnelError("CLOSED", "tunnel not started"));
    return this.#cni.open(node, features, signal);
  }

  handleCni(handler: CniHandler): void {
    this.#cniHandler = handler;
    if (this.#cni) this.#cni.handler = handler;
  }

  async addPeer(nodeName: string, peerId?: string, addrs?: string[]): Promise<void> {
    const id = peerId ?? (await this.#book.peerOf(nodeName));
    if (!id) throw new TunnelError("NO_PEER", `no peer ID for node ${nodeName}`);
    if (this.#o.identity.mode === "secure" && peerId) this.#book.pin(nodeName, peerId);
    else this.#book.set(nodeName, id);
    if (addrs?.length && this.#libp2p) await this.#libp2p.peerStore.merge(peerIdFromString(id), { multiaddrs: addrs.map((a) => multiaddr(a)) });
  }

  forgetPeer(nodeName: string): void {
    this.#book.unpin(nodeName);
  }

  peers(): PeerInfo[] {
    const byPeer = new Map<string, PeerInfo>();
    for (const c of this.#libp2p?.getConnections() ?? []) {
      const id = c.remotePeer.toString();
      let p = byPeer.get(id);
      if (!p) {
        const limits = this.#proxy!.limitsOf(id);
        p = { peerId: id, nodeName: this.#book.nodeOf(id), connected: true, addrs: [], relayed: true, streams: limits.tcp.open + limits.udp.open, limits };
        byPeer.set(id, p);
      }
      const addr = c.remoteAddr.toString();
      p.addrs.push(addr);
      if (!addr.includes("/p2p-circuit")) p.relayed = false;
    }
    return [...byPeer.values()];
  }

  setRelayNodes(relays: RelayNode[]): void {
    this.#o.relayNodes = relays;
    this.#book
      .setRelays(relays)
      .then(() => {
        if (this.#allowed) for (const r of this.#book.relays) if (r.peerId) this.#allowed.add(r.peerId);
        return this.#relays?.check();
      })
      .catch((err) => this.#log.error("relay nodes not applied", { error: err as Error }));
  }

  setAllowedPeers(peerIds: string[]): void {
    if (this.#o.identity.mode !== "secure") {
      this.#log.warn("setAllowedPeers ignored: identity mode is compat");
      return;
    }
    if (!this.#allowed) {
      this.#pendingAllowed = [...peerIds]; // not started: the gater starts with these
      return;
    }
    const next = new Set([this.#peerId, ...peerIds]);
    for (const r of this.#book.relays) if (r.peerId) next.add(r.peerId);
    const prev = this.#allowed;
    this.#allowed = next;
    for (const id of next) if (!prev.has(id)) void this.#greet(id);
    for (const c of this.#libp2p?.getConnections() ?? []) {
      if (next.has(c.remotePeer.toString())) continue;
      this.#log.info("closing connection of a peer no longer allowed", { peer: c.remotePeer.toString() });
      void c.close().catch(() => c.abort(new Error("peer no longer allowed")));
    }
  }

  /**
   * A newly allowed peer that mDNS already showed us (its announcements were not acted on while
   * it was unknown): connect now rather than at the next announcement or the first request.
   */
  async #greet(id: string): Promise<void> {
    const libp2p = this.#libp2p;
    if (!libp2p || id === this.#peerId) return;
    try {
      const peer = peerIdFromString(id);
      if (libp2p.getConnections(peer).length > 0) return;
      if ((await libp2p.peerStore.get(peer)).addresses.length === 0) return;
      await this.#discovery?.handshake(peer, "MDNS");
    } catch {
      // not in the peer store (never seen on the LAN) or not a valid ID: nothing to greet
    }
  }
}

/** Default for TunnelOptions.refusedLogIntervalMs. */
const REFUSED_LOG_INTERVAL_MS = 10 * 60_000;
/** Bound on remembered refused peers, so a stream of random IDs cannot grow the map forever. */
const MAX_REFUSED_PEERS = 4096;

/**
 * The secure-mode refusal line, at most once per peer per interval; the next line after a quiet
 * interval says how many refusals were not logged.
 */
function refusalLogger(log: Logger, intervalMs: number): (peer: PeerId, direction: string) => void {
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (peerId, direction) => {
    const peer = peerId.toString();
    const now = Date.now();
    const s = seen.get(peer);
    if (s && now - s.at < intervalMs) {
      s.suppressed++;
      return;
    }
    if (!s && seen.size >= MAX_REFUSED_PEERS) seen.clear();
    seen.set(peer, { at: now, suppressed: 0 });
    log.warn(REFUSAL_LINE, s?.suppressed ? { peer, direction, notLogged: s.suppressed } : { peer, direction });
  };
}

function defaultListen(port: number, transport: TunnelOptions["transport"]): string[] {
  const out: string[] = [];
  if (transport !== "quic") out.push(`/ip4/0.0.0.0/tcp/${port}`);
  if (transport !== "tcp") out.push(`/ip4/0.0.0.0/udp/${port}/quic-v1`);
  return out;
}
