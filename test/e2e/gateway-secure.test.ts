// The edge gateway in secure identity mode, in the netns test bed. gw and n2 run `edgemesh agent`
// with identityMode secure and a PSK; `edgemesh gateway` on gw (nic eth1, the outside LAN) runs
// secure too: it keeps a random key in its own stateDir and publishes its peer ID on Node gw
// under edgemesh.kubeedge.io/gateway-peer-id (here through the shared manifest folder, as
// ".edgemesh-peer-gw-gateway.yaml"); the agents admit it as "gw-gateway". The outside client then
// reaches n2's pod through the gateway and the tunnel. A second gateway with the PSK whose ID
// was never published where the agents read is refused by n2, counted, and gets 503s.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestNode } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP_PORTS, BUN, MAIN, createCluster, serviceYaml, until, type Agent, type Cluster } from "./harness.ts";

const OUTSIDE_GW = "192.168.60.1";
const HTTP_PORT = 8080;
const ROGUE_PORT = 9080;
const PEER_FILE = (name: string) => `.edgemesh-peer-${name}.yaml`;

const gatewayYaml = (port: number) => `apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: edge-gw, namespace: default }
spec:
  servers: [{ port: { number: ${port}, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [edge-gw]
  http:
    - { match: [{ uri: { prefix: /local } }], route: [{ destination: { host: local } }] }
    - { match: [{ uri: { prefix: /remote } }], route: [{ destination: { host: remote } }] }
`;

function gatewayConfig(manifests: string, state: string, psk: string, admin: string): string {
  return `apiVersion: gateway.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshGateway
kubeAPIConfig:
  manifestDir: ${manifests}
commonConfig:
  stateDir: ${state}
  adminAddress: ${admin}
modules:
  edgeGateway:
    enable: true
    nic: eth1
  edgeTunnel:
    enable: true
    identityMode: secure
    psk:
      enable: true
      path: ${psk}
`;
}

describe("e2e: edge gateway in secure identity mode", () => {
  let c: Cluster;
  let outside: TestNode;
  let agents: Agent[];
  let gateway: Watched;
  let rogue: Watched;
  let gatewayId = "";

  const peerIdOf = (output: string) => output.match(/tunnel started peerId=(\S+)/)?.[1] ?? "";
  const metric = async (node: string, name: string) => {
    const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
    return Number(text.match(new RegExp(`^\\w*${name} (\\d+)`, "m"))?.[1] ?? -1);
  };
  const curl = (url: string) => outside.exec(["curl", "-sS", "--max-time", "4", "-w", " %{http_code}", url]).then((r) => r.stdout);

  beforeAll(async () => {
    c = await createCluster({
      lans: [
        { name: "edge", cidr: "10.10.0.0/24" },
        { name: "outside", cidr: "192.168.60.0/24" },
      ],
      nodes: [
        { name: "gw", lan: "edge", ip: "10.10.0.11", podCidr: "10.244.1.0/24", extraNics: [{ lan: "outside", ip: OUTSIDE_GW }] },
        { name: "n2", lan: "edge", ip: "10.10.0.12", podCidr: "10.244.2.0/24" },
        { name: "client", lan: "outside", ip: "192.168.60.100", podCidr: "10.244.9.0/24" },
      ],
    });
    outside = c.node("client");
    const psk = join(c.dir, "psk");
    writeFileSync(psk, "edgemesh-e2e-gateway-secure-psk\n");
    await c.startApp(await c.node("gw").addPod("local-app", "10.244.1.10"), "local-app");
    await c.startApp(await c.node("n2").addPod("remote-app", "10.244.2.10"), "remote-app");
    c.writeManifest("local.yaml", serviceYaml({ name: "local", clusterIP: "10.96.0.11", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.1.10", node: "gw", name: "local-app" }] }));
    c.writeManifest("remote.yaml", serviceYaml({ name: "remote", clusterIP: "10.96.0.12", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.2.10", node: "n2", name: "remote-app" }] }));
    c.writeManifest("gateway.yaml", gatewayYaml(HTTP_PORT));
    const opts = { tunnel: { psk, identityMode: "secure" as const } };
    agents = await Promise.all([c.startAgent("gw", opts), c.startAgent("n2", opts)]);
    const config = join(c.dir, "edgemesh-gateway.yaml");
    writeFileSync(config, gatewayConfig(c.manifests, join(c.dir, "state-gateway"), psk, "127.0.0.1:10552"));
    gateway = c.node("gw").spawn([BUN, MAIN, "gateway", "--config", config], { env: { NODE_NAME: "gw", EDGEMESH_LOG_LEVEL: "info" } });
    await gateway.waitFor(/\brunning\b/, 20_000);
    gatewayId = peerIdOf(gateway.output());
  }, 60_000);

  afterAll(async () => {
    await rogue?.kill("SIGTERM").catch(() => 0);
    await gateway?.kill("SIGTERM").catch(() => 0);
    await c?.destroy();
  });

  test("the gateway starts in secure mode with a random key in its own stateDir and publishes its ID on Node gw under its own key", async () => {
    expect(gateway.output()).not.toContain("not supported");
    expect(gateway.output()).toMatch(/tunnel started peerId=\S+ .*mode=secure/);
    expect(gatewayId.length).toBeGreaterThan(40);
    expect(existsSync(join(c.dir, "state-gateway", "tunnel.key"))).toBe(true);
    // Not the compat ID derived from "gw-gateway", and not the agent's.
    expect(gatewayId).not.toBe(peerIdOf(agents[0]!.proc.output()));
    const file = join(c.manifests, PEER_FILE("gw-gateway"));
    expect(await until(async () => existsSync(file), 5000)).toBe(true);
    const text = readFileSync(file, "utf8");
    expect(text).toContain("kind: Node");
    expect(text).toMatch(/name: gw\n/);
    expect(text).toContain(`edgemesh.kubeedge.io/gateway-peer-id: ${gatewayId}`);
    // The agent's own publication for the same Node is untouched.
    expect(readFileSync(join(c.manifests, PEER_FILE("gw")), "utf8")).toContain(`edgemesh.kubeedge.io/peer-id: ${peerIdOf(agents[0]!.proc.output())}`);
  });

  test("the agents admit it as gw-gateway, and the outside client reaches n2's pod through the gateway and the tunnel", async () => {
    expect(await until(async () => agents[1]!.proc.output().includes(`peer ID published node=gw-gateway peer=${gatewayId}`), 10_000)).toBe(true);
    // n2 sees three publications on two Nodes: gw's agent, gw's gateway; its own is not a peer.
    expect(await metric("n2", "tunnel_published_peers")).toBe(2);
    expect((await curl(`http://${OUTSIDE_GW}:${HTTP_PORT}/local`))).toBe("local-app 200");
    const t0 = Date.now();
    const ok = await until(async () => (await curl(`http://${OUTSIDE_GW}:${HTTP_PORT}/remote`)) === "remote-app 200", 20_000, 200);
    if (!ok) throw new Error(`gateway cannot reach n2; gateway:\n${gateway.output().slice(-3000)}\nn2:\n${agents[1]!.proc.output().slice(-3000)}`);
    console.log(`secure gateway: outside -> n2 answered ${Date.now() - t0} ms after start`);
    for (let i = 0; i < 5; i++) expect(await curl(`http://${OUTSIDE_GW}:${HTTP_PORT}/remote`)).toBe("remote-app 200");
  }, 40_000);

  test("a gateway whose ID was never published is refused by n2, counted, and answers 503", async () => {
    // Same PSK, same node and tunnel name, the agents' publications (public), but its own folder:
    // its random ID reaches nobody.
    const folder = join(c.dir, "rogue-manifests");
    mkdirSync(folder);
    for (const f of ["local.yaml", "remote.yaml"]) copyFileSync(join(c.manifests, f), join(folder, f));
    for (const n of ["gw", "n2"]) copyFileSync(join(c.manifests, PEER_FILE(n)), join(folder, PEER_FILE(n)));
    writeFileSync(join(folder, "gateway.yaml"), gatewayYaml(ROGUE_PORT));
    const config = join(c.dir, "rogue-gateway.yaml");
    writeFileSync(config, gatewayConfig(folder, join(c.dir, "state-rogue"), join(c.dir, "psk"), "127.0.0.1:10553"));
    const deniedBefore = await metric("n2", "tunnel_gater_denied_total");
    rogue = c.node("gw").spawn([BUN, MAIN, "gateway", "--config", config], { env: { NODE_NAME: "gw", EDGEMESH_LOG_LEVEL: "info" } });
    await rogue.waitFor(/\brunning\b/, 20_000);
    const rogueId = peerIdOf(rogue.output());
    expect(rogueId.length).toBeGreaterThan(40);
    expect(rogueId).not.toBe(gatewayId);
    // Its local route works (no tunnel needed); n2's pod never answers it.
    expect(await until(async () => (await curl(`http://${OUTSIDE_GW}:${ROGUE_PORT}/local`)) === "local-app 200", 5000)).toBe(true);
    for (let i = 0; i < 3; i++) expect(await curl(`http://${OUTSIDE_GW}:${ROGUE_PORT}/remote`)).toMatch(/ 50[234]$/);
    expect(await metric("n2", "tunnel_gater_denied_total")).toBeGreaterThan(deniedBefore);
    expect(agents[1]!.proc.output()).toMatch(new RegExp(`not in the allowed list.*${rogueId}|${rogueId}.*not in the allowed list`));
    // The published gateway is undisturbed.
    expect(await curl(`http://${OUTSIDE_GW}:${HTTP_PORT}/remote`)).toBe("remote-app 200");
  }, 60_000);
});
