// SOCKS5 to a node in another LAN through a relay (issue 10): the relay test bed (two edge sites
// behind their own NAT routers, a relay node on the "public" LAN), agents with socks5Proxy on,
// Node objects in the manifest folder. From n1, clients that speak SOCKS5 to 169.254.96.16:10800
// (curl --socks5-hostname, `nc -X 5`, ssh with nc as its ProxyCommand as EdgeMesh documents) reach
// ports on n2's own address, which n1 cannot reach directly.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { twoSites, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP, BUN, createCluster, nodeYaml, until, webOnN2, type Cluster } from "./harness.ts";

const SOCKS = "169.254.96.16:10800";
const N2 = "192.168.2.11";

describe("e2e: SOCKS5 CONNECT by node name through a relay", () => {
  let c: Cluster;
  let client: Pod;
  const agents = new Map<string, Watched>();
  const relays = [{ nodeName: "relay", advertiseAddress: ["10.0.0.5"] }];

  const startAgent = (node: string): Watched => {
    const proc = c.spawnAgent(node, { socks5: true, tunnel: { psk: join(c.dir, "psk"), relayNodes: relays } }).proc;
    agents.set(node, proc);
    return proc;
  };
  const logs = () => [...agents].map(([n, p]) => `--- ${n}:\n${p.output().slice(-2500)}`).join("\n");
  const viaSocks = (path: string, host = "n2") => ["curl", "-s", "--max-time", "5", "--socks5-hostname", SOCKS, `http://${host}:8080${path}`];

  beforeAll(async () => {
    c = await createCluster(twoSites({}, { nodes: [{ name: "relay", lan: "pub", ip: "10.0.0.5", podCidr: "10.244.9.0/24" }] }));
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-socks5-secret\n");
    c.writeManifest("nodes.yaml", [nodeYaml("relay", "10.0.0.5"), nodeYaml("n1", "192.168.1.11"), nodeYaml("n2", N2)].join("---\n"));
    ({ client } = await webOnN2(c));
    // Host ports on n2 itself (not a pod): HTTP and a TCP echo on its own address, and a
    // server-first "SSH" banner as sshd would send, then an echo.
    const host = c.node("n2").spawn([BUN, APP, "--name", "n2-host", "--ip", N2, "--http", "8080", "--tcp", "9000"]);
    await host.waitFor(/ready/, 10_000);
    c.node("n2").spawn(["socat", `TCP-LISTEN:22,bind=${N2},fork,reuseaddr`, "SYSTEM:'echo SSH-2.0-edgemesh-e2e; cat'"]);
    startAgent("relay");
    await agents.get("relay")!.waitFor(/\brunning\b/, 15_000);
    startAgent("n2");
    startAgent("n1");
    await agents.get("n1")!.waitFor(/\brunning\b.*socks5=10800/, 15_000);
    await agents.get("n2")!.waitFor(/\brunning\b/, 15_000);
  }, 90_000);

  afterAll(async () => {
    await c?.destroy();
  });

  test("n1 cannot reach n2's host ports directly", async () => {
    const r = await c.node("n1").exec(["curl", "-s", "--max-time", "1", `http://${N2}:8080/`]);
    expect(r.code).not.toBe(0);
  });

  test("curl --socks5-hostname n2 from n1 reaches a port on n2's own address", async () => {
    const ok = await until(async () => (await c.node("n1").exec(viaSocks("/"))).stdout === "n2-host", 30_000, 200);
    if (!ok) throw new Error(`no answer through SOCKS5:\n${logs()}`);
    // The far agent dialed n2's own address: the server saw the connection come from it.
    expect((await c.node("n1").exec(viaSocks("/ip"))).stdout).toBe(N2);
    const peers = JSON.parse((await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"])).stdout) as { nodeName?: string; relayed: boolean }[];
    expect(peers.find((p) => p.nodeName === "n2")?.relayed).toBe(true); // PSK over TCP: no hole punching
  }, 60_000);

  test("a pod on n1 reaches n2 the same way, and by n2's IP as well as its name", async () => {
    expect((await client.exec(viaSocks("/"))).stdout).toBe("n2-host");
    const byIp = await client.exec(["curl", "-s", "--max-time", "5", "--socks5", SOCKS, `http://${N2}:8080/`]);
    expect(byIp.stdout).toBe("n2-host");
  });

  test("nc -X 5 carries a TCP stream both ways", async () => {
    const r = await c.node("n1").exec(["nc", "-N", "-w", "5", "-X", "5", "-x", SOCKS, "n2", "9000"], { stdin: "hello through the relay\n" });
    expect(r.stdout).toBe("hello through the relay\n");
  });

  test("ssh with nc as its ProxyCommand (the EdgeMesh way) gets n2's server banner", async () => {
    const r = await c.node("n1").exec(
      ["ssh", "-v", "-o", `ProxyCommand=nc -X 5 -x ${SOCKS} %h %p`, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "root@n2", "true"],
      { timeoutMs: 15_000 },
    );
    // A banner server, not sshd: the version exchange is the part that proves the path.
    expect(r.stderr).toContain("remote software version edgemesh-e2e");
  }, 20_000);

  test("a closed port on n2 is a SOCKS5 failure reply, not a hang", async () => {
    const r = await c.node("n1").exec(["curl", "-s", "-S", "--max-time", "5", "--socks5-hostname", SOCKS, "http://n2:1/"]);
    expect(r.code).toBe(97); // CURLE_PROXY: the proxy answered with a failure
    const unknown = await c.node("n1").exec(["curl", "-s", "-S", "--max-time", "5", "--socks5-hostname", SOCKS, "http://no-such-node:22/"]);
    expect(unknown.code).toBe(97);
  });

  test("connect latency through the relay: SOCKS5 vs a ClusterIP service to the same node", async () => {
    const time = async (argv: string[]) => {
      const r = await c.node("n1").exec([...argv.slice(0, 1), "-o", "/dev/null", "-w", "%{time_total}", ...argv.slice(1)]);
      expect(r.code).toBe(0);
      return Number(r.stdout) * 1000;
    };
    const socks: number[] = [];
    const svc: number[] = [];
    for (let i = 0; i < 15; i++) {
      socks.push(await time(viaSocks("/")));
      svc.push(await time(["curl", "-s", "--max-time", "5", "http://10.96.0.10/"]));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const metrics = (await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
    const read = (name: string) => Number(metrics.match(new RegExp(`^edgemesh_socks5_connect_duration_seconds_${name} (\\S+)$`, "m"))?.[1] ?? NaN);
    const count = read("count");
    const meanMs = (read("sum") / count) * 1000;
    console.log(
      `socks5 e2e: request through the relay, median of 15 (curl time_total): SOCKS5 ${median(socks).toFixed(1)} ms, ClusterIP service ${median(svc).toFixed(1)} ms; ` +
        `SOCKS5 CONNECT (request to success reply, agent histogram) mean ${meanMs.toFixed(1)} ms over ${count}`,
    );
    expect(count).toBeGreaterThanOrEqual(15);
    expect(meanMs).toBeGreaterThan(0);
  }, 60_000);
});
