// The typed object store every source writes into and compile() reads from. Sources never
// publish tables themselves: they change the store, the store notifies, and the publisher
// (merging bursts) compiles and swaps the table. A source that relists replaces a whole kind in
// one call, so objects deleted while it was disconnected disappear and nothing partial is seen.

import { type Kind, type KubeObject, KINDS, objectKey } from "./objects.ts";

export type StoreSnapshot = { readonly [K in Kind]: ReadonlyMap<string, KubeObject> };

export interface ObjectStore {
  upsert(kind: Kind, obj: KubeObject): void;
  remove(kind: Kind, key: string): void;
  /** Atomically replace every object of the given kinds (kinds not listed are untouched). */
  replace(objects: Partial<Record<Kind, readonly KubeObject[]>>): void;
  /** A consistent view; valid until the next change (maps are copied on write). */
  snapshot(): StoreSnapshot;
  /** Monotonic change counter: compile() can skip work when nothing changed. */
  readonly revision: number;
  onChange(listener: () => void): () => void;
}

export function createObjectStore(): ObjectStore {
  return new MapStore();
}

class MapStore implements ObjectStore {
  #maps = emptyMaps();
  #listeners = new Set<() => void>();
  revision = 0;

  upsert(kind: Kind, obj: KubeObject): void {
    const next = new Map(this.#maps[kind]);
    next.set(objectKey(obj), obj);
    this.#maps = { ...this.#maps, [kind]: next };
    this.#changed();
  }

  remove(kind: Kind, key: string): void {
    if (!this.#maps[kind].has(key)) return;
    const next = new Map(this.#maps[kind]);
    next.delete(key);
    this.#maps = { ...this.#maps, [kind]: next };
    this.#changed();
  }

  replace(objects: Partial<Record<Kind, readonly KubeObject[]>>): void {
    const maps = { ...this.#maps };
    for (const kind of Object.keys(objects) as Kind[]) {
      const next = new Map<string, KubeObject>();
      for (const obj of objects[kind] ?? []) next.set(objectKey(obj), obj);
      maps[kind] = next;
    }
    this.#maps = maps;
    this.#changed();
  }

  snapshot(): StoreSnapshot {
    return this.#maps;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.revision++;
    for (const listener of this.#listeners) listener();
  }
}

function emptyMaps(): Record<Kind, ReadonlyMap<string, KubeObject>> {
  const maps = {} as Record<Kind, ReadonlyMap<string, KubeObject>>;
  for (const kind of KINDS) maps[kind] = new Map();
  return maps;
}
