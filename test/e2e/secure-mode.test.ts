// Secure mode in the netns test bed: n1 and n2 run `edgemesh agent` with identityMode secure and
// a PSK, publish their random peer IDs into the shared manifest folder, and reach each other's
// services (HTTP to a ClusterIP whose endpoint is on the other node). A third agent on n3 has the
// PSK and knows the others' published IDs, but its own ID was never published where n1 and n2
// read (it runs from its own folder): they refuse it, count it, log it once, and its pods cannot
// reach n2's services.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { oneLan, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP_PORTS, BUN, createCluster, MAIN, serviceYaml, until, type Agent, type Cluster } from "./harness.ts";

const PEER_FILE = (node: string) => `.edgemesh-peer-${node}.yaml`;

describe("e2e: secure mode (published peer IDs)", () => {
  let c: Cluster;
  let n1: Agent;
  let n2: Agent;
  let rogue: Watched;
  let clientOn1: Pod;
  let clientOn2: Pod;
  let clientOn3: Pod;
  let rogueId = "";

  const peerIdOf = (output: string) => output.match(/tunnel started peerId=(\S+)/)?.[1] ?? "";
  const metric = async (node: string, name: string) => {
    const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
    return Number(text.match(new RegExp(`^\\w*${name} (\\d+)`, "m"))?.[1] ?? -1);
  };
  const get = (pod: Pod, url: string) => pod.exec(["curl", "-s", "--connect-timeout", "1", "--max-time", "3", url]).then((r) => r.stdout);

  beforeAll(async () => {
    c = await createCluster(oneLan(3));
    const psk = join(c.dir, "psk");
    writeFileSync(psk, "edgemesh-e2e-secure-secret\n");
    await c.startApp(await c.node("n1").addPod("a-on-n1", "10.244.1.10"));
    await c.startApp(await c.node("n2").addPod("b-on-n2", "10.244.2.10"));
    clientOn1 = await c.node("n1").addPod("client1", "10.244.1.100");
    clientOn2 = await c.node("n2").addPod("client2", "10.244.2.100");
    clientOn3 = await c.node("n3").addPod("client3", "10.244.3.100");
    const services =
      serviceYaml({ name: "on-n2", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.2.10", node: "n2" }] }) +
      "---\n" +
      serviceYaml({ name: "on-n1", clusterIP: "10.96.0.11", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.1.10", node: "n1" }] });
    c.writeManifest("services.yaml", services);
    const opts = { tunnel: { psk, identityMode: "secure" as const } };
    [n1, n2] = await Promise.all([c.startAgent("n1", opts), c.startAgent("n2", opts)]);
  }, 60_000);

  afterAll(async () => {
    await rogue?.kill("SIGTERM").catch(() => 0);
    await c?.destroy(); // stops the agents and every process spawned in the namespaces
  });

  test("each agent publishes its random peer ID in the manifest folder", async () => {
    const published = await until(async () => existsSync(join(c.manifests, PEER_FILE("n1"))) && existsSync(join(c.manifests, PEER_FILE("n2"))), 5000);
    expect(published).toBe(true);
    for (const [node, agent] of [["n1", n1], ["n2", n2]] as const) {
      const text = readFileSync(join(c.manifests, PEER_FILE(node)), "utf8");
      const id = peerIdOf(agent.proc.output());
      expect(id.length).toBeGreaterThan(40);
      expect(text).toContain("kind: Node");
      expect(text).toContain(`edgemesh.kubeedge.io/peer-id: ${id}`);
    }
  });

  test("the two published agents reach each other's services through the tunnel", async () => {
    const t0 = Date.now();
    const ok = await until(async () => (await get(clientOn1, "http://10.96.0.10/")) === "b-on-n2", 20_000, 100);
    console.log(`secure mode: n1 -> n2 answered ${Date.now() - t0} ms after both agents ran`);
    if (!ok) throw new Error(`n1 cannot reach n2; n1:\n${n1.proc.output().slice(-3000)}\nn2:\n${n2.proc.output().slice(-3000)}`);
    expect(await until(async () => (await get(clientOn2, "http://10.96.0.11/")) === "a-on-n1", 10_000, 100)).toBe(true);
    for (let i = 0; i < 5; i++) expect(await get(clientOn1, "http://on-n2/")).toBe("b-on-n2");
  }, 40_000);

  test("an agent whose ID was never published is refused by the others, counted and logged once", async () => {
    // The rogue on n3: same PSK, the others' publications (public), its own folder, so its own
    // ID reaches nobody. Its config is n1's with the folder and state dir swapped.
    const folder = join(c.dir, "rogue-manifests");
    mkdirSync(folder);
    copyFileSync(join(c.manifests, "services.yaml"), join(folder, "services.yaml"));
    for (const node of ["n1", "n2"]) copyFileSync(join(c.manifests, PEER_FILE(node)), join(folder, PEER_FILE(node)));
    const config = readFileSync(n1.configPath, "utf8").replace(`manifestDir: ${c.manifests}`, `manifestDir: ${folder}`).replace(/stateDir: .*/, `stateDir: ${join(c.dir, "state-rogue")}`);
    expect(config).toContain(folder);
    const configPath = join(c.dir, "agent-rogue.yaml");
    writeFileSync(configPath, config);
    rogue = c.node("n3").spawn([BUN, MAIN, "agent", "--config", configPath], { env: { NODE_NAME: "n3", EDGEMESH_LOG_LEVEL: "info" } });
    await rogue.waitFor(/\brunning\b/, 15_000);
    rogueId = peerIdOf(rogue.output());
    expect(rogueId.length).toBeGreaterThan(40);
    expect(existsSync(join(c.manifests, PEER_FILE("n3")))).toBe(false);

    // Its pods' requests to n2's service fail, every time.
    for (let i = 0; i < 5; i++) expect(await get(clientOn3, "http://10.96.0.10/")).not.toBe("b-on-n2");
    const denied = await metric("n2", "tunnel_gater_denied_total");
    expect(denied).toBeGreaterThanOrEqual(2);
    const refusals = (out: string) => out.split("\n").filter((l) => l.includes("not in the allowed list") && l.includes(rogueId));
    // mDNS keeps announcing the rogue and it keeps dialing: still one line per peer on n2.
    expect(refusals(n2.proc.output()).length).toBe(1);
    expect(refusals(n1.proc.output()).length).toBeLessThanOrEqual(1);
    // The rogue's tunnel could not open a single proxy stream; n2 accepted none from it.
    expect(await metric("n3", "tunnel_proxy_open_failures_total")).toBeGreaterThanOrEqual(5);
    expect(await metric("n3", "tunnel_proxy_streams_opened_total")).toBe(0);
    // The published pair is undisturbed.
    expect(await get(clientOn1, "http://10.96.0.10/")).toBe("b-on-n2");
  }, 60_000);
});
