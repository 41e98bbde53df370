// Per-compile indexes of the store's maps by namespace and name. Nested maps rather than one
// map keyed by "namespace/name": lookups then use the objects' own (flat, hash-cached) strings
// instead of building and hashing 10k new strings per compile.

import type { KubeObject } from "../objects.ts";
import { SERVICE_NAME_LABEL } from "./endpoints.ts";

/** namespace -> name -> value. */
export type NameIndex<T> = Map<string, Map<string, T>>;

export function lookup<T>(index: NameIndex<T>, namespace: string, name: string): T | undefined {
  return index.get(namespace)?.get(name);
}

/** Slices by namespace and the service named in their kubernetes.io/service-name label. */
export function indexSlices(slices: ReadonlyMap<string, KubeObject>): NameIndex<KubeObject[]> {
  const index: NameIndex<KubeObject[]> = new Map();
  for (const slice of slices.values()) {
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (typeof service !== "string" || service === "") continue;
    if (slice.addressType === "FQDN") continue; // kube-proxy ignores FQDN slices too
    const namespace = slice.metadata.namespace || "default";
    let inner = index.get(namespace);
    if (inner === undefined) index.set(namespace, (inner = new Map()));
    const list = inner.get(service);
    if (list) list.push(slice);
    else inner.set(service, [slice]);
  }
  return index;
}

/** Objects (Endpoints, DestinationRules) by namespace and their own name. */
export function indexByName(objects: ReadonlyMap<string, KubeObject>): NameIndex<KubeObject> {
  const index: NameIndex<KubeObject> = new Map();
  for (const obj of objects.values()) {
    const name = obj.metadata?.name;
    if (typeof name !== "string") continue;
    const namespace = obj.metadata.namespace || "default";
    let inner = index.get(namespace);
    if (inner === undefined) index.set(namespace, (inner = new Map()));
    inner.set(name, obj);
  }
  return index;
}
