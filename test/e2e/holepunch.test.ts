// Cross-LAN hole punching (DCUtR over QUIC): two edge sites behind MASQUERADE routers with a
// firewall, a relay on a "public" LAN. The public LAN uses 11.0.0.0/24: libp2p treats the
// documentation and benchmark ranges (203.0.113/24, 198.18/15) as private and would never punch
// to them; these addresses exist only inside this run's namespaces.
//
// Which path carries the bytes is read from the relay node's eth0 receive counter: relayed
// traffic enters the relay once per byte; a direct connection passes it by.
//
// With endpoint-independent NATs (Linux keeps the source port) the relayed connection is
// upgraded to a direct one; with MASQUERADE --random (endpoint-dependent mapping) the punch
// cannot meet the peer's mapping and traffic stays on the relay.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { twoSites, type Pod } from "../support/netns.ts";
import { createCluster, peersOf, until, webOnN2, type Agent, type Cluster } from "./harness.ts";
import type { PeerView } from "../../src/admin/peers.ts";

const MIB = 1024 * 1024;

interface Sites {
  c: Cluster;
  client: Pod;
  agents: Record<string, Agent>;
}

async function siteToSite(randomPorts: boolean): Promise<Sites> {
  const c = await createCluster(
    twoSites({ pub: "11.0.0", nat: { firewall: true, randomPorts } }, { nodes: [{ name: "relay", lan: "pub", ip: "11.0.0.5", podCidr: "10.244.9.0/24" }] }),
  );
  try {
    const { client } = await webOnN2(c);
    const tunnel = { psk: false as const, transport: "quic" as const, relayNodes: [{ nodeName: "relay", advertiseAddress: ["11.0.0.5"] }] };
    const relay = await c.startAgent("relay", { tunnel });
    const n2 = await c.startAgent("n2", { tunnel });
    const n1 = await c.startAgent("n1", { tunnel });
    // Both sites learn their public address from the relay before any traffic, and the
    // client's first packet must meet n1's service rules: "running" comes before the jumps into
    // our chains, and conntrack would pin a SYN that slipped past them to the wrong path.
    await Promise.all([
      n1.proc.waitFor(/public QUIC address confirmed/, 15_000),
      n2.proc.waitFor(/public QUIC address confirmed/, 15_000),
      n1.proc.waitFor(/jumps installed/, 15_000),
    ]);
    return { c, client, agents: { relay, n1, n2 } };
  } catch (err) {
    await c.destroy();
    throw err;
  }
}

async function relayRxBytes(c: Cluster): Promise<number> {
  return Number((await c.node("relay").must(["cat", "/sys/class/net/eth0/statistics/rx_bytes"])).stdout.trim());
}

/** A counter from the agent's /metrics on `node` (0 when absent). */
async function metric(c: Cluster, node: string, name: string): Promise<number> {
  const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  return Number(new RegExp(`^edgemesh_${name} (\\d+)`, "m").exec(text)?.[1] ?? 0);
}

async function n2SeenFromN1(c: Cluster): Promise<PeerView | undefined> {
  return (await peersOf(c, "n1")).find((p) => p.nodeName === "n2");
}

/** GET n bytes from the pod on site B; returns the length received and the relay's rx growth. */
async function fetchThroughTunnel(c: Cluster, client: Pod, n: number): Promise<{ got: number; relayRx: number; seconds: number }> {
  const before = await relayRxBytes(c);
  const r = await client.exec(["curl", "-s", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", `http://10.96.0.10/size?n=${n}`], { timeoutMs: 25_000 });
  const [got, seconds] = r.stdout.trim().split(" ").map(Number);
  return { got: got ?? 0, relayRx: (await relayRxBytes(c)) - before, seconds: seconds ?? 0 };
}

function logsOf(s: Sites): string {
  return Object.entries(s.agents)
    .map(([n, a]) => `--- ${n}:\n${a.proc.output().slice(-3000)}`)
    .join("\n");
}

describe("e2e: hole punching through two endpoint-independent NATs", () => {
  let s: Sites;
  let c: Cluster;
  let client: Pod;

  beforeAll(async () => {
    s = await siteToSite(false);
    ({ c, client } = s);
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test("the sites cannot reach each other unsolicited", async () => {
    const r = await c.node("n1").exec(["curl", "-s", "--max-time", "1", "http://11.0.0.2:20006/"]);
    expect(r.code).not.toBe(0);
  });

  test("the first request flows through the relay, then the peers are connected directly", async () => {
    const first = await fetchThroughTunnel(c, client, 300_000);
    console.log(`holepunch e2e: first request ${first.got} bytes, relay rx grew ${first.relayRx} bytes`);
    expect(first.got).toBe(300_000);
    expect(first.relayRx).toBeGreaterThan(300_000);
    const t0 = Date.now();
    const direct = await until(async () => (await n2SeenFromN1(c))?.relayed === false, 20_000, 100);
    console.log(`holepunch e2e: direct after ${Date.now() - t0} ms: ${JSON.stringify(await n2SeenFromN1(c))}`);
    if (!direct) console.log(logsOf(s));
    expect(direct).toBe(true);
    // Direct over QUIC to site B's NAT: its listener (we dialed) or its client mapping (it dialed us).
    expect((await n2SeenFromN1(c))!.addrs.some((a) => a.startsWith("/ip4/11.0.0.2/udp/") && a.includes("/quic-v1/") && !a.includes("p2p-circuit"))).toBe(true);
    // The agents export it: whichever side ran DCUtR's dial step counted the upgrade.
    const upgrades = (await metric(c, "n1", "tunnel_holepunch_upgrades_total")) + (await metric(c, "n2", "tunnel_holepunch_upgrades_total"));
    expect(upgrades).toBeGreaterThanOrEqual(1);
    // The punching side sent its burst of datagrams from the QUIC listen port (opening its NAT).
    const punches = (await metric(c, "n1", "tunnel_holepunch_punch_datagrams_total")) + (await metric(c, "n2", "tunnel_holepunch_punch_datagrams_total"));
    const skipped = (await metric(c, "n1", "tunnel_holepunch_unilateral_skipped_total")) + (await metric(c, "n2", "tunnel_holepunch_unilateral_skipped_total"));
    console.log(`holepunch e2e: punch datagrams ${punches}, unilateral dials skipped ${skipped}`);
    expect(punches).toBeGreaterThanOrEqual(1);
    // Before DCUtR, libp2p tries a direct dial to the peer's public address; the peer is behind a
    // NAT (it advertises a client mapping), so that plain dial is skipped and counted.
    expect(skipped).toBeGreaterThanOrEqual(1);
  }, 60_000);

  test("a 5 MiB transfer after the upgrade passes the relay by", async () => {
    const big = await fetchThroughTunnel(c, client, 5 * MIB);
    console.log(`holepunch e2e: direct 5 MiB in ${big.seconds} s, relay rx grew ${big.relayRx} bytes`);
    expect(big.got).toBe(5 * MIB);
    expect(big.relayRx).toBeLessThan(256 * 1024);
  }, 30_000);

  test("the direct connection outlives the relay", async () => {
    await s.agents.relay!.proc.kill("SIGKILL");
    const r = await client.exec(["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{size_download}", `http://10.96.0.10/size?n=${MIB}`]);
    expect(Number(r.stdout)).toBe(MIB);
    expect((await n2SeenFromN1(c))?.relayed).toBe(false);
  }, 20_000);
});

describe("e2e: endpoint-dependent NATs (MASQUERADE --random) keep traffic on the relay", () => {
  let s: Sites;
  let c: Cluster;
  let client: Pod;

  beforeAll(async () => {
    s = await siteToSite(true);
    ({ c, client } = s);
  }, 60_000);
  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test("after DCUtR's attempts, n2 is still reached through the relay and bytes cross it", async () => {
    const first = await fetchThroughTunnel(c, client, 100_000);
    if (first.got !== 100_000) console.log(logsOf(s));
    expect(first.got).toBe(100_000);
    await Bun.sleep(8000); // DCUtR: 3 attempts of at most 5 s each, all failing fast here
    const seen = await n2SeenFromN1(c);
    console.log(`holepunch e2e (random NAT): n1's view of n2 ${JSON.stringify(seen)}`);
    if (seen?.relayed !== true) console.log(logsOf(s));
    expect(seen?.relayed).toBe(true);
    // DCUtR did try (so staying relayed is the NAT's doing, not a punch never attempted).
    expect(s.agents.n1!.proc.output() + s.agents.n2!.proc.output()).toContain("hole punch: punching and dialing");
    expect((await metric(c, "n1", "tunnel_holepunch_attempts_total")) + (await metric(c, "n2", "tunnel_holepunch_attempts_total"))).toBeGreaterThanOrEqual(1);
    expect((await metric(c, "n1", "tunnel_holepunch_upgrades_total")) + (await metric(c, "n2", "tunnel_holepunch_upgrades_total"))).toBe(0);
    const skipped = (await metric(c, "n1", "tunnel_holepunch_unilateral_skipped_total")) + (await metric(c, "n2", "tunnel_holepunch_unilateral_skipped_total"));
    console.log(`holepunch e2e (random NAT): unilateral dials skipped ${skipped}, punch datagrams ${(await metric(c, "n1", "tunnel_holepunch_punch_datagrams_total")) + (await metric(c, "n2", "tunnel_holepunch_punch_datagrams_total"))}`);
    const big = await fetchThroughTunnel(c, client, 2 * MIB);
    console.log(`holepunch e2e (random NAT): relayed 2 MiB in ${big.seconds} s, relay rx grew ${big.relayRx} bytes`);
    expect(big.got).toBe(2 * MIB);
    expect(big.relayRx).toBeGreaterThan(2 * MIB);
  }, 40_000);
});
