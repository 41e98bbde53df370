// Keeps the ObjectStore in step with the informers' caches, with the store discipline the rest
// of the control plane relies on:
// - nothing reaches the store before every informer has its first complete list; then ONE
//   store.replace writes every owned kind, so no table is compiled from half the kinds;
// - a relist replaces its kind in one call, so objects deleted while disconnected disappear;
// - watch events are applied once per tick: one event is one upsert/remove, a burst one replace
//   of the kind instead of N copies of its map (store.upsert copies the map to keep snapshots
//   immutable).

import { objectKey, type Kind, type KubeObject } from "../objects.ts";
import type { ObjectStore } from "../store.ts";
import type { InformerHandlers, WatchEventType } from "./informers.ts";

/** One change of a kind in a tick is an upsert/remove; more are one replace. Each upsert copies
 * the kind's map anyway, so from two changes on a single rebuild is cheaper, and consumers see
 * one store change per tick either way. */
const MAX_SINGLE_CHANGES = 1;

export interface StoreMirror {
  handlers(kind: Kind): Pick<InformerHandlers, "onList" | "onEvent">;
  readonly live: boolean;
  /** Every owned kind as currently cached (kinds not watched are empty). */
  view(): Partial<Record<Kind, KubeObject[]>>;
  count(kind: Kind): number;
}

export function createStoreMirror(o: {
  store: ObjectStore;
  owned: readonly Kind[];
  /** True when every informer has completed its first list. */
  allSynced(): boolean;
  /** Called after the first live write. */
  onLive(): void;
  /** Called after live changes reached the store. */
  onChanged(): void;
}): StoreMirror {
  const caches = new Map<Kind, Map<string, KubeObject>>();
  const pending = new Map<Kind, Map<string, KubeObject | null> | "replace">();
  let live = false;
  let queued = false;

  const view = () => {
    const out: Partial<Record<Kind, KubeObject[]>> = {};
    for (const kind of o.owned) out[kind] = [...(caches.get(kind)?.values() ?? [])];
    return out;
  };

  const flush = () => {
    queued = false;
    if (!live) {
      pending.clear();
      if (!o.allSynced()) return;
      o.store.replace(view());
      live = true;
      o.onLive();
      return;
    }
    for (const [kind, changes] of pending) {
      if (changes !== "replace" && changes.size <= MAX_SINGLE_CHANGES) {
        for (const [key, obj] of changes) {
          if (obj) o.store.upsert(kind, obj);
          else o.store.remove(kind, key);
        }
      } else {
        o.store.replace({ [kind]: [...caches.get(kind)!.values()] });
      }
    }
    pending.clear();
    o.onChanged();
  };
  const queue = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(flush);
  };

  return {
    handlers: (kind) => ({
      onList(items: KubeObject[]) {
        const cache = new Map<string, KubeObject>();
        for (const obj of items) cache.set(objectKey(obj), obj);
        caches.set(kind, cache);
        pending.set(kind, "replace");
        queue();
      },
      onEvent(type: WatchEventType, obj: KubeObject) {
        const key = objectKey(obj);
        const cache = caches.get(kind)!;
        if (type === "DELETED") cache.delete(key);
        else cache.set(key, obj);
        let changes = pending.get(kind);
        if (changes !== "replace") {
          if (!changes) pending.set(kind, (changes = new Map()));
          changes.set(key, type === "DELETED" ? null : obj);
        }
        queue();
      },
    }),
    get live() {
      return live;
    },
    view,
    count: (kind) => caches.get(kind)?.size ?? 0,
  };
}
