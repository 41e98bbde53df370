// Secure-mode peer-ID publication: what is published, how annotations are read (malformed ones
// counted and logged once), how the reading side drives the tunnel, the publisher's retries and
// republication, the manifest folder's peer files, and the peer book's pinning.

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock } from "../../src/control/clock.ts";
import { KubeSourceError } from "../../src/control/kube/errors.ts";
import { createManifestSource, parseManifest, peerManifestFile, peerManifestYaml, writePeerManifest } from "../../src/control/manifest/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createObjectStore, type ObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createPeerPublisher, type PeerPublishTarget } from "../../src/main/peer-publish.ts";
import { createPeerWatcher, PEER_ID_ANNOTATION, readPublishedPeers } from "../../src/main/peer-watch.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { isPeerIdString, peerIdFromNodeName } from "../../src/tunnel/index.ts";
import { PeerBook } from "../../src/tunnel/peers.ts";

const ID1 = await peerIdFromNodeName("n1");
const ID2 = await peerIdFromNodeName("n2");
const ID3 = await peerIdFromNodeName("n3");

const node = (name: string, peerId?: unknown): KubeObject => ({
  apiVersion: "v1",
  kind: "Node",
  metadata: { name, ...(peerId === undefined ? {} : { annotations: { [PEER_ID_ANNOTATION]: peerId as string } }) },
});

const metric = (m: ReturnType<typeof createMetrics>, name: string) => Number(m.render().match(new RegExp(`^edgemesh_${name} (\\d+)`, "m"))?.[1] ?? -1);

describe("annotation parsing", () => {
  test("a peer ID string is recognised and anything else is not", () => {
    expect(isPeerIdString(ID1)).toBe(true);
    for (const bad of ["", "nope", `${ID1}x`, ID1.slice(0, 20), 42, null, undefined, "Qm" + "1".repeat(200)]) expect(isPeerIdString(bad)).toBe(false);
  });

  test("published peers are read from Node annotations; absent ones are skipped, malformed ones reported", () => {
    const r = readPublishedPeers([node("n1", ID1), node("n2", ` ${ID2}\n`), node("n3"), node("bad", "not-a-peer-id"), node("num", 7)]);
    expect([...r.peers]).toEqual([["n1", ID1], ["n2", ID2]]);
    expect(r.malformed).toEqual([{ node: "bad", value: "not-a-peer-id" }, { node: "num", value: "7" }]);
  });
});

describe("publication content", () => {
  test("a peer manifest is a Node with only its name and the annotation", () => {
    const text = peerManifestYaml("n1", { [PEER_ID_ANNOTATION]: ID1 });
    const parsed = parseManifest(peerManifestFile("n1"), text);
    if (!parsed.ok) throw new Error(parsed.error.message);
    expect(parsed.objects).toHaveLength(1);
    expect(parsed.objects[0]!.kind).toBe("Node");
    expect(parsed.objects[0]!.object.metadata).toEqual({ name: "n1", annotations: { [PEER_ID_ANNOTATION]: ID1 } });
  });

  test("the file name is the hidden .edgemesh-peer-<node>.yaml and refuses names that are not node names", () => {
    expect(peerManifestFile("edge-1.site")).toBe(".edgemesh-peer-edge-1.site.yaml");
    expect(() => peerManifestFile("../etc/passwd")).toThrow();
    expect(() => peerManifestFile("Upper")).toThrow();
  });
});

describe("manifest folder: peer files", () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("the source reads peer files, merges their annotation into a Node of an ordinary file, and ignores other kinds in them", async () => {
    dir = await mkdtemp(join(tmpdir(), "edgemesh-peerfiles-"));
    await writeFile(join(dir, "nodes.yaml"), `apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: { zone: a }\n  annotations: { other: kept }\n`);
    await writeFile(join(dir, "svc.yaml"), `apiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: 80 }] }\n`);
    await writePeerManifest(dir, "n1", { [PEER_ID_ANNOTATION]: ID1 });
    await writePeerManifest(dir, "n2", { [PEER_ID_ANNOTATION]: ID2 });
    // A peer file that tries to define a Service: ignored, web keeps its ClusterIP.
    await writeFile(join(dir, ".edgemesh-peer-evil.yaml"), `apiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec: { clusterIP: 10.96.0.99, ports: [{ name: http, port: 80 }] }\n`);
    // Other dotfiles stay skipped (editor locks).
    await writeFile(join(dir, ".#svc.yaml"), `kind: Service\nmetadata: { name: lock }\n`);
    expect((await readdir(dir)).some((n) => n.includes(".tmp-"))).toBe(false); // written atomically

    const store = createObjectStore();
    const source = createManifestSource({ dir, store, log: createMemoryLogger(), rescanIntervalMs: 0 });
    await source.start();
    try {
      const snap = store.snapshot();
      expect(snap.Node.get("/n1")!.metadata).toEqual({ name: "n1", labels: { zone: "a" }, annotations: { other: "kept", [PEER_ID_ANNOTATION]: ID1 } });
      expect(snap.Node.get("/n2")!.metadata.annotations).toEqual({ [PEER_ID_ANNOTATION]: ID2 });
      expect([...snap.Service.keys()]).toEqual(["default/web"]);
      expect(snap.Service.get("default/web")!.spec.clusterIP).toBe("10.96.0.10");
      expect(source.ignored).toBe(1);

      await unlink(join(dir, peerManifestFile("n2")));
      await source.rescan();
      expect(store.snapshot().Node.has("/n2")).toBe(false);
    } finally {
      source.stop();
    }
  });
});

function fakeTunnel() {
  const calls: string[] = [];
  return {
    calls,
    allowed: [] as string[],
    setAllowedPeers(ids: string[]) {
      this.allowed = ids;
      calls.push(`allow ${ids.length}`);
    },
    async addPeer(nodeName: string, peerId?: string) {
      calls.push(`add ${nodeName} ${peerId}`);
    },
    forgetPeer(nodeName: string) {
      calls.push(`forget ${nodeName}`);
    },
  };
}

describe("reading side: the watcher drives the tunnel", () => {
  test("published IDs become the allowed set and the node -> peer map; withdrawals are applied", () => {
    const store = createObjectStore();
    store.replace({ Node: [node("self", ID3), node("n1", ID1)] });
    const tunnel = fakeTunnel();
    const metrics = createMetrics();
    const w = createPeerWatcher({ store, tunnel, nodeName: "self", log: createMemoryLogger(), metrics });
    expect(tunnel.allowed).toEqual([ID1]); // our own publication is not a peer
    expect(tunnel.calls).toEqual(["allow 1", `add n1 ${ID1}`]);

    store.upsert("Node", node("n2", ID2));
    expect(tunnel.allowed).toEqual([ID1, ID2].sort());
    expect(tunnel.calls.at(-1)).toBe(`add n2 ${ID2}`);
    expect(metric(metrics, "tunnel_published_peers")).toBe(2);

    const before = tunnel.calls.length;
    store.upsert("Service", { kind: "Service", metadata: { name: "x", namespace: "default" } });
    expect(tunnel.calls.length).toBe(before); // no Node changed, nothing re-applied

    store.upsert("Node", node("n1")); // annotation removed
    expect(tunnel.allowed).toEqual([ID2]);
    expect(tunnel.calls.at(-1)).toBe("forget n1");
    expect([...w.current().keys()]).toEqual(["n2"]);
    w.stop();
    store.remove("Node", "/n2");
    expect(tunnel.allowed).toEqual([ID2]); // stopped: no longer follows the store
  });

  test("a malformed annotation is ignored, counted and logged once, and never stops the others", () => {
    const store = createObjectStore();
    const tunnel = fakeTunnel();
    const metrics = createMetrics();
    const log = createMemoryLogger();
    createPeerWatcher({ store, tunnel, nodeName: "self", log, metrics });
    store.replace({ Node: [node("bad", "garbage!"), node("n1", ID1)] });
    store.upsert("Node", node("n2", ID2));
    store.upsert("Node", node("n2", ID2));
    expect(tunnel.allowed).toEqual([ID1, ID2].sort());
    expect(metric(metrics, "tunnel_peer_annotation_malformed_total")).toBe(1);
    expect(log.lines.filter((l) => l.includes("malformed")).length).toBe(1);
    store.upsert("Node", node("bad", "other garbage"));
    expect(metric(metrics, "tunnel_peer_annotation_malformed_total")).toBe(2);
  });
});

function fakeTarget(restoresMissing: boolean) {
  const t = {
    where: "test",
    restoresMissing,
    writes: 0,
    fail: undefined as Error | undefined,
    async publish(_node: string, annotations: Record<string, string>) {
      t.writes++;
      if (t.fail) throw t.fail;
      t.last = annotations;
    },
    last: undefined as Record<string, string> | undefined,
    closed: false,
    close() {
      t.closed = true;
    },
  };
  return t satisfies PeerPublishTarget;
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("writing side: the publisher", () => {
  const make = (store: ObjectStore, target: PeerPublishTarget) => {
    const clock = createManualClock(0);
    const log = createMemoryLogger();
    const metrics = createMetrics();
    const p = createPeerPublisher({ nodeName: "n1", peerId: ID1, target, store, log, metrics, clock, random: () => 1, retryInitialMs: 100, retryMaxMs: 1000 });
    return { p, clock, log, metrics };
  };

  test("publishes the annotation at start and again when the own Node loses it", async () => {
    const store = createObjectStore();
    const target = fakeTarget(false);
    const { p, metrics } = make(store, target);
    p.start();
    await settle();
    expect(target.last).toEqual({ [PEER_ID_ANNOTATION]: ID1 });
    expect(p.published).toBe(true);
    store.upsert("Node", node("n1", ID1));
    store.upsert("Node", node("n2"));
    await settle();
    expect(target.writes).toBe(1); // ours is in place
    store.upsert("Node", node("n1")); // someone removed it
    await settle();
    expect(target.writes).toBe(2);
    expect(metric(metrics, "tunnel_peer_publish_total")).toBe(2);
    store.remove("Node", "/n1"); // the API target does not recreate Nodes
    await settle();
    expect(target.writes).toBe(2);
    p.stop();
    expect(target.closed).toBe(true);
  });

  test("the manifest target restores a deleted publication", async () => {
    const store = createObjectStore();
    store.upsert("Node", node("n1", ID1));
    const target = fakeTarget(true);
    const { p } = make(store, target);
    p.start();
    await settle();
    store.remove("Node", "/n1");
    await settle();
    expect(target.writes).toBe(2);
    p.stop();
  });

  test("failures are retried with backoff; 403 is one error line naming the nodes patch permission", async () => {
    const store = createObjectStore();
    const target = fakeTarget(false);
    target.fail = new KubeSourceError("PATCH /api/v1/nodes/n1: HTTP 403 Forbidden", 403, "Forbidden");
    const { p, clock, log, metrics } = make(store, target);
    p.start();
    await settle();
    expect(target.writes).toBe(1);
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      await settle();
    }
    expect(target.writes).toBe(6);
    const forbidden = log.lines.filter((l) => l.includes("403"));
    expect(forbidden.length).toBe(1);
    expect(forbidden[0]).toContain('nodes "patch"');
    expect(forbidden[0]).toContain("n1");
    // Backoff doubles: after a 1000 ms cap, the next retry is not due before 1000 ms.
    clock.advance(500);
    await settle();
    expect(target.writes).toBe(6);
    target.fail = new Error("connection refused");
    clock.advance(500);
    await settle();
    clock.advance(1000);
    await settle();
    expect(log.lines.filter((l) => l.includes("connection refused")).length).toBe(1);
    target.fail = undefined;
    clock.advance(1000);
    await settle();
    expect(p.published).toBe(true);
    expect(metric(metrics, "tunnel_peer_publish_failures_total")).toBe(8); // 6 x 403, 2 x refused
    const writes = target.writes;
    clock.advance(10_000);
    await settle();
    expect(target.writes).toBe(writes); // no more retries once published
    p.stop();
  });
});

describe("peer book pinning", () => {
  test("a pinned (published) pair is not overridden by a discovery claim", () => {
    const book = new PeerBook(false, 20006, "tcp");
    book.pin("n1", ID1);
    expect(book.set("n1", ID2)).toBe(false); // another peer claiming to be n1
    expect(book.set("n2", ID1)).toBe(false); // n1's peer claiming to be n2
    expect(book.nodeOf(ID1)).toBe("n1");
    expect(book.set("n2", ID2)).toBe(true);
    book.pin("n1", ID3); // republished with a new key
    expect(book.nodeOf(ID1)).toBeUndefined();
    expect(book.nodeOf(ID3)).toBe("n1");
    book.unpin("n1");
    expect(book.nodeOf(ID3)).toBeUndefined();
    expect(book.set("n1", ID2)).toBe(true);
  });

  test("peerOf in secure mode knows only learned or pinned nodes", async () => {
    const book = new PeerBook(false, 20006, "tcp");
    expect(await book.peerOf("n1")).toBeUndefined();
    book.pin("n1", ID1);
    expect(await book.peerOf("n1")).toBe(ID1);
  });
});
