// Hole punching: which addresses get confirmed from a relay's observation, how DCUtR's dials are
// split into punches and QUIC dials, the skipped unilateral dial, the relayed connection left to
// drain, and the raw punch datagram's bytes. One test runs a real libp2p host.
import { afterAll, expect, test } from "bun:test";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { Connection, PeerId } from "@libp2p/interface";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import type { Libp2p } from "libp2p";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import {
  addressesFromObservation,
  HolePunch,
  HolePunchError,
  planUpgrade,
  PUNCH_COUNT,
  RELAY_HOP_PROTOCOL,
  type HolePunchComponents,
} from "../../src/tunnel/holepunch.ts";
import { createHost, quicListenPort } from "../../src/tunnel/host.ts";
import { punchDatagram, sockaddrIn } from "../../src/tunnel/udp-punch.ts";

const ma = (s: string): Multiaddr => multiaddr(s);
const peer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair("Ed25519"));

test("a relay's observation yields the listener's mapping (listen port kept) and the client socket's", () => {
  const got = addressesFromObservation(ma("/ip4/11.0.0.1/udp/43981/quic-v1"), 20006);
  expect(got?.listen.toString()).toBe("/ip4/11.0.0.1/udp/20006/quic-v1");
  expect(got?.client.toString()).toBe("/ip4/11.0.0.1/udp/43981/quic-v1");
  // Private, TCP and relayed observations cannot be punched to.
  expect(addressesFromObservation(ma("/ip4/192.168.1.11/udp/43981/quic-v1"), 20006)).toBeUndefined();
  expect(addressesFromObservation(ma("/ip4/203.0.113.7/udp/43981/quic-v1"), 20006)).toBeUndefined();
  expect(addressesFromObservation(ma("/ip4/11.0.0.1/tcp/43981"), 20006)).toBeUndefined();
});

test("a peer's addresses split into QUIC dials to its listener and punches to its client mapping", () => {
  const plan = planUpgrade(
    [
      ma("/ip4/11.0.0.2/udp/20006/quic-v1"),
      ma("/ip4/11.0.0.2/udp/52236/quic-v1"),
      ma("/ip4/11.0.0.2/udp/52236/quic-v1/p2p/12D3KooWGfRb8pCPgkuahHoiAZCNFaApYS7errKqiQpMn5kK7BNg"),
      ma("/ip4/192.168.2.11/udp/20006/quic-v1"),
      ma("/ip4/11.0.0.2/tcp/20006"),
    ],
    20006,
  );
  expect(plan.dial.map(String)).toEqual(["/ip4/11.0.0.2/udp/20006/quic-v1"]);
  expect(plan.punch).toEqual([{ ip: "11.0.0.2", port: 52236 }]);
});

test("the listen port is read from the first QUIC listen address", () => {
  expect(quicListenPort(["/ip4/10.0.0.1/tcp/20006", "/ip4/10.0.0.1/udp/20007/quic-v1"])).toBe(20007);
  expect(quicListenPort(["/ip4/10.0.0.1/tcp/20006"])).toBeUndefined();
  expect(quicListenPort(["/ip4/0.0.0.0/udp/0/quic-v1"])).toBeUndefined();
});

test("the punch datagram carries our listen port as its UDP source port", () => {
  expect([...punchDatagram(20006, 52236, new Uint8Array([7, 8]))]).toEqual([0x4e, 0x26, 0xcc, 0x0c, 0, 10, 0, 0, 7, 8]);
  expect([...sockaddrIn("11.0.0.2").subarray(0, 8)]).toEqual([2, 0, 0, 0, 11, 0, 0, 2]);
});

/** A HolePunch over stub components; timers are queued and run by hand. */
function stubbed(connections: Partial<Connection>[] = []) {
  const dials: { addrs: Multiaddr[]; options: unknown }[] = [];
  const sent: string[] = [];
  const timers: (() => void)[] = [];
  const direct = { remotePeer: peerIdFromString("12D3KooWGfRb8pCPgkuahHoiAZCNFaApYS7errKqiQpMn5kK7BNg"), remoteAddr: ma("/ip4/11.0.0.2/udp/20006/quic-v1") } as Connection;
  const components = {
    addressManager: {},
    transportManager: { getAddrs: () => [] },
    events: { addEventListener() {}, removeEventListener() {} },
    connectionManager: {
      openConnection: async (addrs: Multiaddr | Multiaddr[], options: unknown) => {
        dials.push({ addrs: Array.isArray(addrs) ? addrs : [addrs], options });
        return direct;
      },
      getConnections: () => connections,
    },
  } as unknown as HolePunchComponents;
  const hp = new HolePunch(components, {
    listenPort: 20006,
    punch: () => ({ send: (src, ip, port) => (sent.push(`${src}->${ip}:${port}`), true), close() {} }),
    log: createMemoryLogger(),
    setTimeout: (fn) => timers.push(fn),
  });
  hp.start();
  const runTimers = () => {
    for (let i = 0; i < 100 && timers.length > 0; i++) timers.shift()!();
  };
  return { hp, dials, sent, timers, runTimers, direct };
}

const PEER_ADDRS = [ma("/ip4/11.0.0.2/udp/20006/quic-v1"), ma("/ip4/11.0.0.2/udp/52236/quic-v1")];

test("DCUtR's dial punches the peer's client mapping from our listen port, then dials its listener", async () => {
  const s = stubbed();
  await s.hp.openConnection(PEER_ADDRS, { priority: 100 });
  expect(s.dials).toHaveLength(1);
  expect(s.dials[0]!.addrs.map(String)).toEqual(["/ip4/11.0.0.2/udp/20006/quic-v1"]);
  expect(s.sent).toEqual(["20006->11.0.0.2:52236"]); // the first punch goes out before the dial
  s.runTimers();
  expect(s.sent).toHaveLength(PUNCH_COUNT);
  expect(s.hp.counters.attempts.value).toBe(1);
  expect(s.hp.counters.punches.value).toBe(PUNCH_COUNT);
});

test("the unilateral dial to a peer behind a NAT is skipped; to a public peer it goes ahead", async () => {
  const s = stubbed();
  await expect(s.hp.openConnection(PEER_ADDRS, { force: true })).rejects.toBeInstanceOf(HolePunchError);
  expect(s.dials).toHaveLength(0);
  expect(s.hp.counters.unilateralSkipped.value).toBe(1);
  await s.hp.openConnection([ma("/ip4/11.0.0.9/udp/20006/quic-v1")], { force: true });
  expect(s.dials).toHaveLength(1);
  expect(s.sent).toHaveLength(0);
});

test("a DCUtR dial with nothing but a client mapping fails without dialing", async () => {
  const s = stubbed();
  await expect(s.hp.openConnection([ma("/ip4/11.0.0.2/udp/52236/quic-v1")], { priority: 100 })).rejects.toThrow("no QUIC listener address");
  expect(s.dials).toHaveLength(0);
});

test("after the upgrade the relayed connection closes only once its streams have ended", async () => {
  let closed = 0;
  const stream = { protocol: "/libp2p/tunnel-proxy/1.0.0", status: "open" };
  const relayed: Partial<Connection> = {
    remoteAddr: ma("/ip4/11.0.0.5/udp/20006/quic-v1/p2p/12D3KooWCDFKaEq8SUYx1H66rNctM8kfsESGGDDUuStgjZUko7r7/p2p-circuit"),
    status: "open",
    streams: [stream, { protocol: "/libp2p/dcutr", status: "open" }] as Connection["streams"],
    close: async () => {
      closed++;
    },
  };
  const s = stubbed([relayed]);
  await s.hp.openConnection(PEER_ADDRS, { priority: 100 });
  await relayed.close!(); // what DCUtR does next
  s.runTimers();
  expect(closed).toBe(0); // the proxy stream is still carrying bytes
  stream.status = "closed";
  s.runTimers();
  expect(closed).toBe(1); // DCUtR's own stream does not hold the connection open
  expect(s.hp.counters.upgrades.value).toBe(1);
});

test("a later close of the relayed connection (shutdown, pruning) is not deferred", async () => {
  let closed = 0;
  const relayed: Partial<Connection> = {
    remoteAddr: ma("/ip4/11.0.0.5/udp/20006/quic-v1/p2p/12D3KooWCDFKaEq8SUYx1H66rNctM8kfsESGGDDUuStgjZUko7r7/p2p-circuit"),
    status: "open",
    streams: [{ protocol: "/libp2p/tunnel-proxy/1.0.0", status: "open" }] as Connection["streams"],
    close: async () => {
      closed++;
    },
  };
  const s = stubbed([relayed]);
  await s.hp.openConnection(PEER_ADDRS, { priority: 100 });
  await relayed.close!(); // DCUtR's: deferred
  expect(closed).toBe(0);
  await relayed.close!(); // anyone else's: at once
  expect(closed).toBe(1);
});

let host: Libp2p | undefined;
afterAll(async () => {
  await host?.stop();
});

test("a real host confirms the relay-observed addresses and advertises them; others' observations are ignored", async () => {
  const port = 42000 + Math.floor(Math.random() * 2000);
  const m = createMetrics();
  const log = createMemoryLogger();
  host = await createHost({
    privateKey: await generateKeyPair("Ed25519"),
    listenAddrs: [`/ip4/127.0.0.1/udp/${port}/quic-v1`],
    transport: "quic",
    isRelay: false,
    useRelays: false,
    mdns: false,
    rendezvous: "test",
    enableHolePunch: true,
    noiseAead: "auto",
    pnetCipher: "auto",
    maxStreamsPerPeer: 64,
    log,
    counters: { handshakeFailures: m.counter("a", "a"), gaterDenied: m.counter("b", "b"), pskMismatch: { key_differs: m.counter("c", "c"), peer_without_psk: m.counter("d", "d"), peer_with_psk: m.counter("e", "e") } },
  });
  await host.start();
  const events = (host as unknown as { components: { events: { safeDispatchEvent(t: string, o: unknown): void } } }).components.events;
  const identify = async (protocols: string[], observed: string, remote = "/ip4/11.0.0.5/udp/20006/quic-v1") =>
    events.safeDispatchEvent("peer:identify", {
      detail: { peerId: await peer(), protocols, listenAddrs: [], observedAddr: ma(observed), connection: { remoteAddr: ma(remote) } },
    });
  const publicAddrs = () => host!.getMultiaddrs().map((a) => a.decapsulateCode(421).toString()).filter((a) => a.startsWith("/ip4/11."));

  await identify(["/ipfs/id/1.0.0"], "/ip4/11.0.0.1/udp/43981/quic-v1"); // not a relay
  await identify([RELAY_HOP_PROTOCOL], "/ip4/11.0.0.1/udp/43981/quic-v1", "/ip4/11.0.0.5/udp/20006/quic-v1/p2p-circuit"); // relayed
  expect(publicAddrs()).toEqual([]);

  await identify([RELAY_HOP_PROTOCOL], "/ip4/11.0.0.1/udp/43981/quic-v1");
  expect(publicAddrs().sort()).toEqual([`/ip4/11.0.0.1/udp/${port}/quic-v1`, "/ip4/11.0.0.1/udp/43981/quic-v1"].sort());
  expect(log.lines.join("\n")).toContain("public QUIC address confirmed");

  // Told again (a relay reconnects): nothing is added twice.
  const mappings = (host as unknown as { components: { addressManager: { ipMappings: { mappings: Map<string, unknown[]> } } } }).components.addressManager.ipMappings.mappings;
  await identify([RELAY_HOP_PROTOCOL], "/ip4/11.0.0.1/udp/43981/quic-v1");
  expect([...mappings.values()].flat()).toHaveLength(1);

  // The NAT moved our client socket's mapping: the old one is withdrawn.
  await identify([RELAY_HOP_PROTOCOL], "/ip4/11.0.0.1/udp/50000/quic-v1");
  expect(publicAddrs().sort()).toEqual([`/ip4/11.0.0.1/udp/${port}/quic-v1`, "/ip4/11.0.0.1/udp/50000/quic-v1"].sort());
});
