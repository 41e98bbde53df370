// Cross-LAN through a relay: two edge sites, each behind its own NAT router (MASQUERADE), and a
// relay node on the "public" network both can reach. Neither site can open a connection to the
// other, and mDNS does not cross routers: n1's agent reaches n2's pod only through the relay
// (circuit relay v2, /p2p/RELAY/p2p-circuit), with the relay named in relayNodes as EdgeMesh does.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { twoSites, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { createCluster, peersOf as peersIn, until, webOnN2, type Cluster } from "./harness.ts";

describe("e2e: cross-LAN through a relay node", () => {
  let c: Cluster;
  let client: Pod;
  const agents = new Map<string, Watched>();
  const relays = [{ nodeName: "relay", advertiseAddress: ["10.0.0.5"] }];

  const startAgent = (node: string): Watched => {
    const proc = c.spawnAgent(node, { tunnel: { psk: join(c.dir, "psk"), relayNodes: relays } }).proc;
    agents.set(node, proc);
    return proc;
  };
  const peersOf = (node: string) => peersIn(c, node);

  beforeAll(async () => {
    c = await createCluster(twoSites({}, { nodes: [{ name: "relay", lan: "pub", ip: "10.0.0.5", podCidr: "10.244.9.0/24" }] }));
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-relay-secret\n");
    ({ client } = await webOnN2(c));
    startAgent("relay");
    await agents.get("relay")!.waitFor(/\brunning\b/, 15_000);
    startAgent("n2");
    startAgent("n1");
    await agents.get("n1")!.waitFor(/\brunning\b/, 15_000);
    await agents.get("n2")!.waitFor(/\brunning\b/, 15_000);
  }, 90_000);

  // destroy() stops the four agents one after another, each given up to 8 s before SIGKILL, then
  // the bed: on a busy machine that passed the 5 s bun gives a hook by default, and a CI run
  // failed on "hook timed out" (bun 1.4 does not read bunfig's [test] timeout: tests and hooks
  // get 5 s unless they name their own, or bun test --timeout is given).
  afterAll(async () => {
    await c?.destroy(); // stops every agent it spawned
  }, 60_000);

  test("the sites cannot reach each other directly", async () => {
    const r = await c.node("n1").exec(["curl", "-s", "--max-time", "1", "http://192.168.2.11:20006/"]);
    expect(r.code).not.toBe(0);
  });

  test("a pod on site A reaches the pod on site B through the relay", async () => {
    const ok = await until(async () => (await client.exec(["curl", "-s", "--max-time", "2", "http://10.96.0.10/"])).stdout === "b-on-n2", 30_000, 200);
    if (!ok) throw new Error(`no answer through the relay; n1:\n${agents.get("n1")!.output().slice(-3000)}\nrelay:\n${agents.get("relay")!.output().slice(-2000)}`);
    for (let i = 0; i < 20; i++) {
      const r = await client.exec(["curl", "-s", "--max-time", "3", "http://web/size?n=200000"]);
      expect(r.stdout.length).toBe(200000); // past relay v2's default 128 KiB cap
    }
    const n2 = (await peersOf("n1")).find((p) => p.nodeName === "n2");
    console.log(`relay e2e: n1's view of n2: ${JSON.stringify(n2)}`);
    expect(n2?.connected).toBe(true);
  }, 60_000);

  test("after DCUtR had its chance, traffic still flows (relayed or upgraded to direct)", async () => {
    // Hole punching through two MASQUERADE routers may or may not succeed; either way traffic
    // must keep flowing. The path in use is printed for the report.
    await Bun.sleep(3000);
    const n2 = (await peersOf("n1")).find((p) => p.nodeName === "n2");
    console.log(`relay e2e: after 3 s n1's view of n2: ${JSON.stringify(n2)}`);
    const r = await client.exec(["curl", "-s", "--max-time", "3", "http://web/"]);
    expect(r.stdout).toBe("b-on-n2");
  }, 30_000);

  test("relay killed and restarted: traffic resumes", async () => {
    await agents.get("relay")!.kill("SIGKILL");
    startAgent("relay");
    await agents.get("relay")!.waitFor(/\brunning\b/, 15_000);
    const t0 = Date.now();
    const ok = await until(async () => (await client.exec(["curl", "-s", "--max-time", "2", "http://web/"])).stdout === "b-on-n2", 60_000, 200);
    console.log(`relay e2e: traffic resumed ${Date.now() - t0} ms after the relay restarted`);
    if (!ok) {
      for (const n of ["n1", "n2", "relay"]) console.log(`${n} exit: ${agents.get(n)!.proc.exitCode} log:\n${agents.get(n)!.output().slice(-4000)}`);
    }
    expect(ok).toBe(true);
  }, 90_000);
});
