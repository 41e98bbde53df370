// Secure mode against the stand-in apiserver and real tunnels on loopback: the agent-side
// publisher PATCHes its Node through our TLS-correct fetch, another agent's watch sees the
// annotation, a 403 gives one line naming the permission, and the published IDs (read from the
// store) decide which tunnels may connect.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKubeFetch } from "../../src/control/kube/index.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import type { EdgeMeshAgentConfig } from "../../src/control/index.ts";
import { createPeerPublisher, createSecurePeers, kubeTarget, type PeerPublisher } from "../../src/main/peer-publish.ts";
import { createPeerWatcher, PEER_ID_ANNOTATION, type PeerWatcher } from "../../src/main/peer-watch.ts";
import { peerIdFromNodeName, TunnelError } from "../../src/tunnel/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { makeSource, removeDir, waitFor, type Harness } from "../support/apiserver/harness.ts";
import { createTestPki, type TestPki } from "../support/certs.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";

const ID1 = await peerIdFromNodeName("n1");
const ID2 = await peerIdFromNodeName("n2");

let pki: TestPki;
let api: StandInApiServer | undefined;
let h: Harness | undefined;
const publishers: PeerPublisher[] = [];
const watchers: PeerWatcher[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(() => pki?.cleanup());
afterEach(async () => {
  for (const p of publishers.splice(0)) p.stop();
  for (const w of watchers.splice(0)) w.stop();
  await stopAllTunnels();
  await h?.source.stop();
  await api?.stop();
  if (h) removeDir(h.stateDir);
  api = h = undefined;
});

/** The stand-in over TLS with client certificates, and a fetch as an edge agent would use it. */
async function tlsApi() {
  api = await startStandInApiServer({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.pem, requireClientCert: true } });
  api.add("Node", fx.node("n1", "10.0.0.1"));
  api.add("Node", fx.node("n2", "10.0.0.2"));
  const tls = { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile };
  const fetch = await createKubeFetch({ mode: "edge", server: api.url, tls, contentType: "", reason: "" });
  return { api, tls, fetch };
}

describe("publication through the Kubernetes API", () => {
  test("the publisher PATCHes its Node over TLS and another agent's watch sees the annotation", async () => {
    const { api, tls, fetch } = await tlsApi();
    // Agent n2: a kube source and the secure-mode watcher on its store.
    h = makeSource(api.url, { mode: "edge", tls });
    await h.source.start();
    const allowed: string[][] = [];
    watchers.push(createPeerWatcher({
      store: h.store,
      tunnel: { setAllowedPeers: (ids) => void allowed.push(ids), addPeer: async () => {}, forgetPeer() {} },
      nodeName: "n2",
      log: createMemoryLogger(),
      metrics: createMetrics(),
    }));
    // Agent n1 publishes (its own store is n2's here: the publisher only reads its own Node).
    const log = createMemoryLogger();
    const p = createPeerPublisher({ nodeName: "n1", peerId: ID1, target: kubeTarget(fetch), store: h.store, log, metrics: createMetrics(), retryInitialMs: 20, retryMaxMs: 100 });
    publishers.push(p);
    p.start();
    await waitFor("n1's annotation in n2's store", () => h!.store.snapshot().Node.get("/n1")?.metadata.annotations?.[PEER_ID_ANNOTATION] === ID1);
    expect(allowed.at(-1)).toEqual([ID1]);
    const patches = api.requests.filter((r) => r.method === "PATCH");
    expect(patches.map((r) => r.path)).toEqual(["/api/v1/nodes/n1"]);
    // A merge patch: the rest of the Node is untouched.
    const stored = api.get("Node", undefined, "n1") as any;
    expect(stored.metadata.labels).toEqual({ "kubernetes.io/hostname": "n1" });
    expect(stored.status.addresses[0].address).toBe("10.0.0.1");

    // Someone strips the annotation: the publisher notices through the watch and puts it back.
    const { annotations: _, ...meta } = stored.metadata;
    api.update("Node", { ...stored, metadata: meta });
    expect((api.get("Node", undefined, "n1") as any).metadata.annotations).toBeUndefined();
    await waitFor("annotation restored", () => (api.get("Node", undefined, "n1") as any).metadata.annotations?.[PEER_ID_ANNOTATION] === ID1);
    expect(api.requests.filter((r) => r.method === "PATCH").length).toBe(2);
    expect(log.lines.some((l) => l.includes("publishing again"))).toBe(true);
  }, 20_000);

  test("403 from RBAC: one error line naming the nodes patch permission, retried until granted", async () => {
    const { api, fetch } = await tlsApi();
    api.forbidPatch = true;
    const log = createMemoryLogger();
    const metrics = createMetrics();
    const p = createPeerPublisher({ nodeName: "n1", peerId: ID1, target: kubeTarget(fetch), store: createObjectStore(), log, metrics, retryInitialMs: 10, retryMaxMs: 40 });
    publishers.push(p);
    p.start();
    await waitFor("several refused PATCHes", () => api.requests.filter((r) => r.method === "PATCH").length >= 4);
    const lines = log.lines.filter((l) => l.includes("publish"));
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("ERROR");
    expect(lines[0]).toContain("403");
    expect(lines[0]).toContain('nodes "patch"');
    expect(lines[0]).not.toContain("\n");
    expect(p.published).toBe(false);
    api.forbidPatch = false;
    await waitFor("published once allowed", () => p.published);
    expect((api.get("Node", undefined, "n1") as any).metadata.annotations[PEER_ID_ANNOTATION]).toBe(ID1);
    expect(metrics.snapshot()["tunnel_peer_publish_failures_total"]).toBeGreaterThanOrEqual(4);
  }, 20_000);

  test("a Node that does not exist yet is retried (404) and published once it appears", async () => {
    const { api, fetch } = await tlsApi();
    const log = createMemoryLogger();
    const p = createPeerPublisher({ nodeName: "n9", peerId: ID1, target: kubeTarget(fetch), store: createObjectStore(), log, metrics: createMetrics(), retryInitialMs: 10, retryMaxMs: 40 });
    publishers.push(p);
    p.start();
    await waitFor("a few 404s", () => api.requests.filter((r) => r.method === "PATCH").length >= 3);
    expect(log.lines.filter((l) => l.includes("404")).length).toBe(1); // one line per distinct failure
    api.add("Node", fx.node("n9", "10.0.0.9"));
    await waitFor("published", () => p.published);
    expect((api.get("Node", undefined, "n9") as any).metadata.annotations[PEER_ID_ANNOTATION]).toBe(ID1);
  }, 20_000);
});

describe("agent wiring", () => {
  test("createSecurePeers admits published peers before the tunnel starts and publishes through the configured API", async () => {
    api = await startStandInApiServer();
    api.add("Node", fx.node("n1", "10.0.0.1"));
    api.add("Node", { ...fx.node("n2", "10.0.0.2"), metadata: { name: "n2", annotations: { [PEER_ID_ANNOTATION]: ID2 } } });
    h = makeSource(api.url);
    await h.source.start();
    const calls: string[] = [];
    const tunnel = {
      peerId: "",
      setAllowedPeers: (ids: string[]) => void calls.push(`allow ${ids.join(",")}`),
      addPeer: async (node: string, id?: string) => void calls.push(`add ${node} ${id}`),
      forgetPeer: () => {},
    };
    const config = { nodeName: "n1", kubeAPIConfig: { master: api.url, kubeConfig: "", manifestDir: "", contentType: "application/json" } } as unknown as EdgeMeshAgentConfig;
    const secure = createSecurePeers(config, h.store, tunnel, createMemoryLogger(), createMetrics());
    try {
      expect(calls).toEqual([`allow ${ID2}`, `add n2 ${ID2}`]); // before any start()
      tunnel.peerId = ID1; // what tunnel.start() yields
      await secure.publish();
      await waitFor("n1 published", () => (api!.get("Node", undefined, "n1") as any).metadata.annotations?.[PEER_ID_ANNOTATION] === ID1);
      expect(api.requests.find((r) => r.method === "PATCH")?.path).toBe("/api/v1/nodes/n1");
    } finally {
      secure.stop();
    }
  }, 20_000);
});

describe("published IDs decide who may connect (real tunnels, secure mode)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "edgemesh-secure-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("published peers reach each other by node name; an unpublished peer is refused and logged once", async () => {
    const secure = (name: string) => ({ identity: { mode: "secure" as const, keyFile: join(dir, `${name}.key`) }, refusedLogIntervalMs: 60_000 });
    const a = testTunnel("a", secure("a"));
    const b = testTunnel("b", secure("b"));
    const rogue = testTunnel("r", secure("r"));
    for (const t of [a, b, rogue]) {
      await t.tunnel.start();
      t.tunnel.handleProxy(() => true);
    }
    // One store stands for the metadata every agent sees; a and b publish, the rogue does not.
    const store = createObjectStore();
    for (const [name, t] of [["a", a], ["b", b]] as const) {
      watchers.push(createPeerWatcher({ store, tunnel: t.tunnel, nodeName: name, log: t.log, metrics: t.metrics }));
    }
    const published = (name: string, id: string) => ({ kind: "Node", metadata: { name, annotations: { [PEER_ID_ANNOTATION]: id } } });
    store.replace({ Node: [published("a", a.tunnel.peerId), published("b", b.tunnel.peerId)] });
    // Addresses come from mDNS in an agent; here the test hands them over.
    await a.tunnel.addPeer("b", b.tunnel.peerId, b.tunnel.addrs());
    const target = { protocol: "tcp" as const, ip: "10.0.0.1", port: 80 };
    const ok = await a.tunnel.openProxyStream("b", target);
    expect(ok.stream.status).toBe("open");
    expect(b.tunnel.peers().find((p) => p.peerId === a.tunnel.peerId)?.nodeName).toBe("a");

    // The rogue reads b's publication (it is public: ID and addresses) and tries five times.
    rogue.tunnel.setAllowedPeers([b.tunnel.peerId]);
    await rogue.tunnel.addPeer("b", b.tunnel.peerId, b.tunnel.addrs());
    for (let i = 0; i < 5; i++) {
      const err = await rogue.tunnel.openProxyStream("b", target).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(TunnelError);
    }
    expect(b.metrics.snapshot()["tunnel_gater_denied_total"]).toBeGreaterThanOrEqual(2); // every refusal counted (libp2p may fold a retry into a failed dial)
    expect(b.log.lines.filter((l) => l.includes("not in the allowed list") && l.includes(rogue.tunnel.peerId)).length).toBe(1);
    expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"]).toBe(1);

    // a's publication disappears: b closes a's connection and a can no longer open streams.
    store.replace({ Node: [published("b", b.tunnel.peerId)] });
    await waitFor("a disconnected from b", () => !b.tunnel.peers().some((p) => p.peerId === a.tunnel.peerId));
    const err = await a.tunnel.openProxyStream("b", target).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TunnelError);
  }, 30_000);
});
