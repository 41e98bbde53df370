// Issue 11 part 1: a flood of short UDP flows to a service on another node must neither lose its
// echoes nor block cross-node TCP. Two nodes on one LAN, PSK tunnel, the UDP echo on a pod on n2;
// a pod on n1 opens 20,000 distinct flows (one datagram each, 300 sockets at a time) while a
// second process in the same pod makes an HTTP request to a service on n2 every 100 ms, on a new
// connection each (each one a new tunnel stream). Before the fix every UDP flow held a tunnel
// stream of the 1,024 per peer that TCP shares until it idled out: ~2,000 echoed, TCP refused.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { oneLan, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP_PORTS, BUN, CLIENT, createCluster, serviceYaml, until, type Agent, type AgentOptions, type Cluster } from "./harness.ts";

const FLOOD = join(import.meta.dir, "../support/apps/udp-flood.ts");
const FLOWS = 20_000;
/** Short, so the test can wait for every flow (and its far socket) to expire. */
const IDLE_S = 3;

interface FloodResult {
  flows: number;
  echoed: number;
  lost: number;
  ms: number;
  rttP50Ms: number;
  rttP99Ms: number;
  bindErrors: number;
}
interface TickResult {
  ok: number;
  failed: number;
  errors: string[];
  ms: number;
}

function rssKiB(agent: Agent): number {
  const line = readFileSync(`/proc/${agent.proc.proc.pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/\d+/)?.[0] ?? NaN);
}

describe("e2e: a UDP flood through the tunnel", () => {
  let c: Cluster;
  let client: Pod;
  let app: Pod;
  const agents = new Map<string, Agent>();

  const metrics = async (node: string) => (await c.node(node).must(["curl", "-s", "--max-time", "3", "http://127.0.0.1:10551/metrics"])).stdout;
  const metric = async (node: string, re: RegExp) => Number((await metrics(node)).match(re)?.[1] ?? NaN);

  async function start(node: string, extra: Partial<AgentOptions["tunnel"]> = {}): Promise<void> {
    await agents.get(node)?.proc.kill("SIGTERM");
    agents.set(node, await c.startAgent(node, { tunnel: { psk: join(c.dir, "psk"), ...extra }, udpIdleTimeoutSeconds: IDLE_S }));
  }

  async function crossNodeWorks(): Promise<boolean> {
    return until(async () => (await client.exec(["curl", "-s", "--max-time", "2", "http://10.96.0.10/"])).stdout === "b-on-n2", 20_000, 100);
  }

  /** A paced HTTP client: one request every 100 ms, each on a new connection; ended by stop(). */
  function ticker(): { stop(): Promise<TickResult> } {
    const w: Watched = client.spawn([BUN, CLIENT, "--host", "10.96.0.10", "--port", "80", "--count", "100000", "--rate", "10", "--concurrency", "4", "--timeout", "2000"]);
    return {
      async stop() {
        await w.kill("SIGTERM");
        const line = w.output().trim().split("\n").pop() ?? "";
        return JSON.parse(line) as TickResult;
      },
    };
  }

  async function flood(flows: number, firstPort: number): Promise<FloodResult> {
    const r = await client.exec([BUN, FLOOD, "--host", "10.96.0.10", "--port", "9001", "--flows", String(flows), "--concurrency", "300", "--first-port", String(firstPort), "--timeout", "3000"], {
      timeoutMs: 240_000,
    });
    if (r.code !== 0) throw new Error(`flood failed: ${r.stderr.slice(-2000)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as FloodResult;
  }

  /** Every flow on both agents has expired (the opener's flows and the far side's sockets). */
  async function drained(): Promise<boolean> {
    return until(async () => (await metric("n1", /^\w*proxy_udp_flows_active (\d+)/m)) === 0 && (await metric("n2", /^\w*proxy_inbound_udp_relays (\d+)/m)) === 0, (IDLE_S + 10) * 1000, 250);
  }

  /** Both agents' RSS within 10% of `base`, polled for up to a minute after the flood. */
  async function rssBack(base: Map<string, number>): Promise<Map<string, number>> {
    const now = new Map<string, number>();
    const within = () => {
      for (const [n, a] of agents) now.set(n, rssKiB(a));
      return [...base].every(([n, kib]) => now.get(n)! <= kib * 1.1);
    };
    const end = Date.now() + 60_000;
    while (!within() && Date.now() < end) await Bun.sleep(1000);
    return now;
  }

  beforeAll(async () => {
    c = await createCluster(oneLan(2));
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-udp-flood\n");
    app = await c.node("n2").addPod("b-on-n2", "10.244.2.10");
    await c.startApp(app, "b-on-n2");
    client = await c.node("n1").addPod("client", "10.244.1.100");
    c.writeManifest(
      "web.yaml",
      serviceYaml({
        name: "web",
        clusterIP: "10.96.0.10",
        ports: [
          { name: "http", port: 80, targetPort: APP_PORTS.http },
          { name: "udp", port: 9001, targetPort: APP_PORTS.udp, protocol: "UDP" },
        ],
        endpoints: [{ ip: "10.244.2.10", node: "n2", name: "b-on-n2" }],
      }),
    );
    await start("n1");
    await start("n2");
    if (!(await crossNodeWorks())) throw new Error(`no cross-node answer; n1:\n${agents.get("n1")!.proc.output().slice(-3000)}`);
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  test(
    "between our agents: 20,000 flows, at least 19,900 echoed, TCP every 100 ms never fails, RSS back within 10%",
    async () => {
      // Warm-up (JIT, pools, the tunnel's first UDP stream), then the baseline once it expired.
      const warm = await flood(2000, 10_000);
      expect(warm.echoed).toBeGreaterThan(1900);
      expect(await drained()).toBe(true);
      await Bun.sleep(2000);
      const base = new Map([...agents].map(([n, a]) => [n, rssKiB(a)]));

      const tick = ticker();
      const r = await flood(FLOWS, 20_000);
      await Bun.sleep(10_000); // TCP must keep working after the flood too
      const t = await tick.stop();
      const n1 = await metrics("n1");
      console.log(`udp flood, our agents: ${JSON.stringify(r)}; tcp every 100 ms: ${JSON.stringify(t)}`);
      const pick = (text: string) => text.split("\n").filter((l) => /^\w*(tunnel_proxy_stream|tunnel_proxy_streams_open|proxy_udp_|proxy_inbound_udp|proxy_remote)/.test(l)).join("\n");
      console.log(`n1:\n${pick(n1)}\nn2:\n${pick(await metrics("n2"))}`);
      for (const place of [client, c.node("n1"), c.node("n2"), app]) {
        const r = await place.exec(["nstat", "-az", "UdpRcvbufErrors", "UdpSndbufErrors", "UdpInErrors", "UdpNoPorts"]);
        console.log(`${place.ns}: ${r.stdout.split("\n").filter((l) => /^Udp/.test(l)).map((l) => l.replace(/\s+/g, " ").trim()).join("; ")}`);
      }

      expect(r.bindErrors).toBe(0);
      expect(r.echoed).toBeGreaterThanOrEqual(19_900);
      // All of it over one multiplexed stream; no flow had a stream of its own, no limit was hit.
      const num = (re: RegExp) => Number(n1.match(re)?.[1] ?? NaN);
      expect(num(/^\w*proxy_udp_mux_streams (\d+)/m)).toBe(1);
      expect(num(/^\w*proxy_udp_own_stream_flows_total (\d+)/m)).toBe(0);
      expect(num(/^\w*tunnel_proxy_stream_limit_total\{protocol="tcp"\} (\d+)/m)).toBe(0);
      expect(t.ok).toBeGreaterThan(100);
      expect(t.failed).toBe(0);

      expect(await drained()).toBe(true);
      const after = await rssBack(base);
      console.log(`agent RSS KiB before the flood ${JSON.stringify([...base])}, after ${JSON.stringify([...after])}`);
      for (const [n, kib] of base) expect(after.get(n)!).toBeLessThanOrEqual(kib * 1.1);
    },
    300_000,
  );

  test(
    "against an agent speaking only EdgeMesh's format: a stream per flow from the UDP budget, recycled oldest first, and TCP never blocked",
    async () => {
      await start("n2", { wireFormat: "edgemesh" });
      expect(await crossNodeWorks()).toBe(true);
      const tick = ticker();
      const r = await flood(FLOWS, 40_000);
      await Bun.sleep(10_000);
      const t = await tick.stop();
      const n1 = await metrics("n1");
      console.log(`udp flood, EdgeMesh-format far agent: ${JSON.stringify(r)}; tcp every 100 ms: ${JSON.stringify(t)}`);
      console.log(n1.split("\n").filter((l) => /^\w*(tunnel_proxy_stream_limit|proxy_udp_(own|flows_evicted|remote|mux_streams))/.test(l)).join("\n"));
      expect(t.ok).toBeGreaterThan(100);
      expect(t.failed).toBe(0);
      const num = (re: RegExp) => Number(n1.match(re)?.[1] ?? NaN);
      expect(num(/^\w*proxy_udp_own_stream_flows_total (\d+)/m)).toBeGreaterThan(10_000);
      expect(num(/^\w*proxy_udp_mux_streams (\d+)/m)).toBe(0);
      expect(num(/^\w*tunnel_proxy_stream_limit_total\{protocol="tcp"\} (\d+)/m)).toBe(0);
      expect(r.echoed).toBeGreaterThanOrEqual(19_000);
    },
    300_000,
  );
});
