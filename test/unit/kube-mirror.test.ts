import { describe, expect, test } from "bun:test";
import type { Kind, KubeObject } from "../../src/control/objects.ts";
import { createObjectStore, type ObjectStore } from "../../src/control/store.ts";
import { createStoreMirror } from "../../src/control/kube/mirror.ts";

const svc = (name: string, rv = "1"): KubeObject => ({ kind: "Service", metadata: { name, namespace: "default", resourceVersion: rv } });
const slice = (name: string): KubeObject => ({ kind: "EndpointSlice", metadata: { name, namespace: "default" } });
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

function spyStore(): { store: ObjectStore; calls: string[] } {
  const inner = createObjectStore();
  const calls: string[] = [];
  const store: ObjectStore = {
    upsert: (k, o) => (calls.push(`upsert ${k}`), inner.upsert(k, o)),
    remove: (k, key) => (calls.push(`remove ${k}`), inner.remove(k, key)),
    replace: (objs) => (calls.push(`replace ${Object.keys(objs).join(",")}`), inner.replace(objs)),
    snapshot: () => inner.snapshot(),
    get revision() { return inner.revision; },
    onChange: (l) => inner.onChange(l),
  };
  return { store, calls };
}

function setup() {
  const { store, calls } = spyStore();
  const synced = new Set<Kind>();
  let live = 0;
  let changed = 0;
  const mirror = createStoreMirror({
    store, owned: ["Service", "EndpointSlice", "Endpoints"],
    allSynced: () => synced.has("Service") && synced.has("EndpointSlice"),
    onLive: () => live++, onChanged: () => changed++,
  });
  return { store, calls, synced, mirror, lives: () => live, changes: () => changed };
}

describe("store mirror", () => {
  test("nothing reaches the store until every kind is listed, then one replace writes all owned kinds", async () => {
    const t = setup();
    t.mirror.handlers("Service").onList([svc("a")]);
    t.synced.add("Service");
    t.mirror.handlers("Service").onEvent("ADDED", svc("b"));
    await tick();
    expect(t.calls).toEqual([]);
    expect(t.mirror.live).toBe(false);
    t.mirror.handlers("EndpointSlice").onList([slice("a-1")]);
    t.synced.add("EndpointSlice");
    await tick();
    expect(t.calls).toEqual(["replace Service,EndpointSlice,Endpoints"]);
    expect([...t.store.snapshot().Service.keys()].sort()).toEqual(["default/a", "default/b"]);
    expect(t.store.snapshot().EndpointSlice.size).toBe(1);
    expect(t.lives()).toBe(1);
  });

  test("a single event is one upsert or remove, a burst one replace, a relist one replace", async () => {
    const t = setup();
    t.mirror.handlers("Service").onList([svc("a")]);
    t.mirror.handlers("EndpointSlice").onList([]);
    t.synced.add("Service").add("EndpointSlice");
    await tick();
    t.calls.length = 0;
    const h = t.mirror.handlers("Service");

    h.onEvent("ADDED", svc("b"));
    await tick();
    h.onEvent("DELETED", svc("a"));
    await tick();
    expect(t.calls).toEqual(["upsert Service", "remove Service"]);

    t.calls.length = 0;
    const rev = t.store.revision;
    for (let i = 0; i < 50; i++) h.onEvent("ADDED", svc(`burst-${i}`));
    await tick();
    expect(t.calls).toEqual(["replace Service"]);
    expect(t.store.revision).toBe(rev + 1);
    expect(t.store.snapshot().Service.size).toBe(51);

    t.calls.length = 0;
    h.onList([svc("only")]);
    h.onEvent("ADDED", svc("after-list"));
    await tick();
    expect(t.calls).toEqual(["replace Service"]);
    expect([...t.store.snapshot().Service.keys()].sort()).toEqual(["default/after-list", "default/only"]);
    expect(t.changes()).toBe(4);
  });
});
