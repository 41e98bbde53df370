// Secure identity for the edge gateway: it publishes its peer ID on the Node it runs on under
// its own annotation (beside the agent's), agents read it as the peer "<node>-gateway", and with
// a manifest folder the gateway and the node's agent each own one publication file for that
// Node, which the folder's reader merges.

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManifestSource, writePeerManifest } from "../../src/control/manifest/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createPeerPublisher, type PeerPublishTarget } from "../../src/main/peer-publish.ts";
import { createPeerWatcher, GATEWAY_PEER_ID_ANNOTATION, PEER_ID_ANNOTATION, readPublishedPeers } from "../../src/main/peer-watch.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { peerIdFromNodeName } from "../../src/tunnel/index.ts";

const AGENT = await peerIdFromNodeName("n1");
const GATEWAY = await peerIdFromNodeName("n1-gateway-random");
const OTHER = await peerIdFromNodeName("n2");

const node = (name: string, annotations: Record<string, unknown>): KubeObject => ({ apiVersion: "v1", kind: "Node", metadata: { name, annotations: annotations as Record<string, string> } });

let dir = "";
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = "";
});

describe("reading publications", () => {
  test("a Node's gateway-peer-id is the peer <node>-gateway, beside the agent's peer-id", () => {
    const r = readPublishedPeers([node("n1", { [PEER_ID_ANNOTATION]: AGENT, [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY }), node("n2", { [PEER_ID_ANNOTATION]: OTHER })]);
    expect([...r.peers].sort()).toEqual([["n1", AGENT], ["n1-gateway", GATEWAY], ["n2", OTHER]]);
    expect(r.malformed).toEqual([]);
  });

  test("a malformed gateway-peer-id is reported under <node>-gateway and leaves the agent's alone", () => {
    const r = readPublishedPeers([node("n1", { [PEER_ID_ANNOTATION]: AGENT, [GATEWAY_PEER_ID_ANNOTATION]: "garbage" })]);
    expect([...r.peers]).toEqual([["n1", AGENT]]);
    expect(r.malformed).toEqual([{ node: "n1-gateway", value: "garbage" }]);
  });

  test("an agent admits the gateway; the gateway (tunnel name n1-gateway) admits the agents but not itself", () => {
    const store = createObjectStore();
    store.replace({ Node: [node("n1", { [PEER_ID_ANNOTATION]: AGENT, [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY }), node("n2", { [PEER_ID_ANNOTATION]: OTHER })] });
    const allowed = (nodeName: string) => {
      const sets: string[][] = [];
      const added: string[] = [];
      const w = createPeerWatcher({ store, tunnel: { setAllowedPeers: (ids) => void sets.push([...ids]), addPeer: async (n) => void added.push(n), forgetPeer() {} }, nodeName, log: createMemoryLogger(), metrics: createMetrics() });
      w.stop();
      return { ids: sets.at(-1), names: added.sort() };
    };
    // Its own ID is not a peer to admit.
    expect(allowed("n2")).toEqual({ ids: [AGENT, GATEWAY].sort(), names: ["n1", "n1-gateway"] });
    expect(allowed("n1-gateway")).toEqual({ ids: [AGENT, OTHER].sort(), names: ["n1", "n2"] });
  });
});

describe("writing the gateway's publication", () => {
  test("the publisher writes its own annotation key and republishes when only the agent's is on the Node", async () => {
    const store = createObjectStore();
    const writes: Record<string, string>[] = [];
    const target: PeerPublishTarget = { where: "test", restoresMissing: false, publish: async (_n, a) => void writes.push(a), close() {} };
    const p = createPeerPublisher({ nodeName: "n1", peerId: GATEWAY, annotation: GATEWAY_PEER_ID_ANNOTATION, target, store, log: createMemoryLogger(), metrics: createMetrics() });
    p.start();
    await Bun.sleep(5);
    expect(writes).toEqual([{ [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY }]);
    // The Node carries the agent's ID only (our publication lost): written again.
    store.replace({ Node: [node("n1", { [PEER_ID_ANNOTATION]: AGENT })] });
    await Bun.sleep(5);
    expect(writes.length).toBe(2);
    // Carrying ours (whatever else is there): nothing more.
    store.replace({ Node: [node("n1", { [PEER_ID_ANNOTATION]: AGENT, [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY })] });
    await Bun.sleep(5);
    expect(writes.length).toBe(2);
    p.stop();
  });

  test("in a manifest folder the agent's and the gateway's files for one Node are merged by the reader", async () => {
    dir = await mkdtemp(join(tmpdir(), "gw-peer-"));
    await writePeerManifest(dir, "n1", { [PEER_ID_ANNOTATION]: AGENT });
    await writePeerManifest(dir, "n1", { [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY }, "n1-gateway");
    expect((await readdir(dir)).filter((f) => f.startsWith(".")).sort()).toEqual([".edgemesh-peer-n1-gateway.yaml", ".edgemesh-peer-n1.yaml"]);
    const store = createObjectStore();
    const source = createManifestSource({ dir, store, log: createMemoryLogger(), rescanIntervalMs: 0 });
    await source.start();
    try {
      const n1 = store.snapshot().Node.get("/n1");
      expect(n1?.metadata.annotations).toEqual({ [PEER_ID_ANNOTATION]: AGENT, [GATEWAY_PEER_ID_ANNOTATION]: GATEWAY });
      expect([...readPublishedPeers(store.snapshot().Node.values()).peers].sort()).toEqual([["n1", AGENT], ["n1-gateway", GATEWAY]]);
    } finally {
      await source.stop();
    }
  });
});
