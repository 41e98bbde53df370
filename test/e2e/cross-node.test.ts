// Cross-node traffic through the tunnel, in the netns test bed: three nodes on one LAN with no
// route between their pod networks (as on real edge sites), each running `edgemesh agent` with
// edgeProxy + edgeDNS + edgeTunnel and a PSK. A client pod on n1 reaches pods on n2 (and n3)
// only through n1's agent -> libp2p tunnel -> the far agent -> the pod.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { oneLan, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP_PORTS, BUN, CLIENT, createCluster, serviceYaml, until, type Cluster } from "./harness.ts";

const PROBE = join(import.meta.dir, "../support/apps/probe.ts");

describe("e2e: cross-node services through the tunnel", () => {
  let c: Cluster;
  let client: Pod;
  const agents = new Map<string, Watched>();
  let firstRequestMs = -1;

  // Spawned without waiting for "running": the start of n1 and n2 is timed (firstRequestMs).
  const startAgent = (node: string, psk: string): Watched => {
    const proc = c.spawnAgent(node, { tunnel: { psk }, udpIdleTimeoutSeconds: 1 }).proc;
    agents.set(node, proc);
    return proc;
  };

  beforeAll(async () => {
    c = await createCluster(oneLan(3));
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-shared-secret\n");
    writeFileSync(join(c.dir, "psk-other"), "some other cluster\n");
    const pods = [
      { node: "n1", name: "a-on-n1", ip: "10.244.1.10" },
      { node: "n2", name: "b-on-n2", ip: "10.244.2.10" },
      { node: "n3", name: "c-on-n3", ip: "10.244.3.10" },
    ];
    for (const p of pods) await c.startApp(await c.node(p.node).addPod(p.name, p.ip), p.name);
    client = await c.node("n1").addPod("client", "10.244.1.100");
    c.writeManifest(
      "web.yaml",
      serviceYaml({
        name: "web",
        clusterIP: "10.96.0.10",
        ports: [
          { name: "http", port: 80, targetPort: APP_PORTS.http },
          { name: "tcp", port: 9000, targetPort: APP_PORTS.tcp },
          { name: "udp", port: 9001, targetPort: APP_PORTS.udp, protocol: "UDP" },
        ],
        endpoints: [{ ip: "10.244.2.10", node: "n2", name: "b-on-n2" }],
      }),
    );
    c.writeManifest(
      "spread.yaml",
      serviceYaml({ name: "spread", clusterIP: "10.96.0.20", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: pods }),
    );
    // Both agents start together; the clock runs until a pod on n1 gets an answer from n2.
    const t0 = Date.now();
    startAgent("n1", join(c.dir, "psk"));
    startAgent("n2", join(c.dir, "psk"));
    // Before the rules exist a SYN to the ClusterIP goes nowhere: a short connect timeout keeps
    // the measurement fine-grained; once connected the answer may take the tunnel setup.
    const ok = await until(async () => (await client.exec(["curl", "-s", "--connect-timeout", "0.2", "--max-time", "3", "http://10.96.0.10/"])).stdout === "b-on-n2", 20_000, 20);
    firstRequestMs = Date.now() - t0;
    console.log(`cross-node: first request answered ${firstRequestMs} ms after both agents were started`);
    if (!ok) throw new Error(`no cross-node answer; n1:\n${agents.get("n1")!.output().slice(-3000)}\nn2:\n${agents.get("n2")!.output().slice(-3000)}`);
    startAgent("n3", join(c.dir, "psk"));
    await agents.get("n3")!.waitFor(/\brunning\b/, 15_000);
  }, 90_000);

  afterAll(async () => {
    await c?.destroy(); // stops every agent it spawned
  });

  test("the pods on n1 and n2 cannot reach each other without the tunnel (no pod routes)", async () => {
    const r = await client.exec(["curl", "-s", "--max-time", "1", "http://10.244.2.10:8080/"]);
    expect(r.stdout).not.toBe("b-on-n2");
    expect(firstRequestMs).toBeGreaterThan(0);
  });

  test("HTTP by name and by ClusterIP reaches the pod on n2", async () => {
    for (const url of ["http://web/", "http://web.default.svc.cluster.local/", "http://10.96.0.10/"]) {
      const r = await client.exec(["curl", "-s", "--max-time", "3", url]);
      expect(r.stdout).toBe("b-on-n2");
    }
  });

  test("TCP echo and a 1 MB body cross the tunnel intact", async () => {
    const r = await client.exec(["socat", "-t", "2", "-", "TCP:10.96.0.10:9000"], { stdin: "hello across nodes\n", timeoutMs: 10_000 });
    expect(r.stdout).toBe("hello across nodes\n");
    const big = await client.exec(["curl", "-s", "--max-time", "5", "http://web/size?n=1048576"]);
    expect(big.stdout.length).toBe(1048576);
  });

  test("UDP echo keeps datagram sizes across the tunnel", async () => {
    const r = await client.exec([BUN, PROBE, "udp", "10.96.0.10", "9001", "1", "100", "1400", "8000"], { timeoutMs: 20_000 });
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, sizes: [1, 100, 1400, 8000] });
  });

  test("UDP flows from many client sockets share one tunnel stream and leave no far socket behind once idle (EdgeMesh #567)", async () => {
    const metrics = async (node: string) => (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
    const value = async (node: string, re: RegExp) => Number((await metrics(node)).match(re)?.[1] ?? NaN);
    // Nothing else opens streams from n1 while these probes run.
    const udpOpened = async () => await value("n1", /^\w*tunnel_proxy_streams_opened_total (\d+)/m);
    const before = await udpOpened();
    for (let i = 0; i < 20; i++) {
      const r = await client.exec([BUN, PROBE, "udp", "10.96.0.10", "9001", "64"], { timeoutMs: 20_000 });
      expect(JSON.parse(r.stdout).ok).toBe(true);
    }
    // 20 flows (a socket each), at most one new UDP stream: the multiplexed one, if it had idled out.
    expect((await udpOpened()) - before).toBeLessThanOrEqual(1);
    // Idle timeout 1 s, swept every 0.5 s: the flows and the far sockets are gone, and at most the
    // one multiplexed UDP stream stays open (TCP streams of earlier tests have closed too).
    const drained = await until(
      async () =>
        (await value("n1", /^\w*proxy_udp_flows_active (\d+)/m)) === 0 &&
        (await value("n2", /^\w*proxy_inbound_udp_relays (\d+)/m)) === 0 &&
        (await value("n1", /^\w*tunnel_proxy_streams_open (\d+)/m)) <= 1,
      5000,
    );
    if (!drained) console.log(`n1 metrics:\n${(await metrics("n1")).split("\n").filter((l) => /^\w*(tunnel_proxy|proxy_udp|proxy_tcp_active|proxy_remote)/.test(l)).join("\n")}`);
    expect(drained).toBe(true);
  }, 60_000);

  test("WebSocket echo through the tunnel", async () => {
    const r = await client.exec([BUN, PROBE, "ws", "ws://web/ws", "one", "two"], { timeoutMs: 20_000 });
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, echoes: ["one", "two"] });
  });

  test("round robin spreads requests over endpoints on three nodes", async () => {
    const r = JSON.parse((await client.exec([BUN, CLIENT, "--host", "10.96.0.20", "--count", "300", "--concurrency", "8"], { timeoutMs: 60_000 })).stdout) as {
      ok: number;
      failed: number;
      byBody: Record<string, number>;
    };
    expect(r.failed).toBe(0);
    for (const name of ["a-on-n1", "b-on-n2", "c-on-n3"]) expect(r.byBody[name]).toBe(100);
  });

  test("/peers on n1 lists n2 as a direct (not relayed) peer", async () => {
    const r = await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"]);
    const peers = JSON.parse(r.stdout) as { nodeName?: string; relayed: boolean; connected: boolean }[];
    const n2 = peers.find((p) => p.nodeName === "n2");
    expect(n2?.connected).toBe(true);
    expect(n2?.relayed).toBe(false);
  });

  test("an agent with another PSK is refused and says why in one log line", async () => {
    // n3 restarts with a key of another cluster: n1 can no longer use n3's endpoint.
    await agents.get("n3")!.kill("SIGTERM");
    const wrong = startAgent("n3", join(c.dir, "psk-other"));
    await wrong.waitFor(/\brunning\b/, 15_000);
    const r = JSON.parse((await client.exec([BUN, CLIENT, "--host", "10.96.0.20", "--count", "30", "--concurrency", "2", "--timeout", "8000"], { timeoutMs: 120_000 })).stdout) as {
      failed: number;
      byBody: Record<string, number>;
    };
    // Requests fail over to the endpoints on n1 and n2; none reaches n3.
    expect(r.byBody["c-on-n3"]).toBeUndefined();
    expect(r.failed).toBe(0);
    const lines = (agents.get("n1")!.output() + wrong.output()).split("\n").filter((l) => l.includes("PSK mismatch"));
    expect(lines.length).toBeGreaterThan(0);
  }, 150_000);
});
