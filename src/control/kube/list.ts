// A complete list of one resource, paged with limit/continue like client-go's pager. Nothing is
// handed on until the last page arrived, so a list that fails halfway changes nothing.
// `fromCache` asks for resourceVersion=0, as client-go's reflector does for its first list: the
// apiserver answers from its watch cache instead of a quorum read from etcd, which matters when
// thousands of edge agents (re)start at once. After a 410 the relist is a consistent read ("").

import type { KubeObject } from "../objects.ts";
import type { KubeFetch } from "./fetch-tls.ts";
import type { ResourceRef } from "./informers.ts";
import { apiError } from "./errors.ts";
import { trimObject } from "./trim.ts";

export type ListResult = { items: KubeObject[]; resourceVersion: string } | "missing";

export async function listAll(f: KubeFetch, resource: ResourceRef, pageSize: number, signal: AbortSignal, fromCache: boolean): Promise<ListResult> {
  const items: KubeObject[] = [];
  let cont = "";
  let limit = pageSize;
  for (;;) {
    const q = new URLSearchParams();
    if (resource.fieldSelector) q.set("fieldSelector", resource.fieldSelector);
    if (limit > 0) q.set("limit", String(limit));
    if (cont) q.set("continue", cont);
    else if (fromCache) q.set("resourceVersion", "0");
    const qs = q.toString();
    const res = await f.request(`${resource.path}${qs ? "?" + qs : ""}`, { signal });
    if (res.status === 410 && cont) {
      // The continue token expired mid-list: start over with one unpaged list, as client-go's pager does.
      await res.body?.cancel();
      items.length = 0;
      cont = "";
      limit = 0;
      continue;
    }
    if (res.status === 404 && resource.optional) {
      await res.body?.cancel();
      return "missing";
    }
    if (res.status !== 200) throw await apiError(`list ${resource.path}`, res);
    const body = (await res.json()) as { metadata?: { resourceVersion?: string; continue?: string }; items?: any[] };
    for (const item of body.items ?? []) items.push(trimObject(item, resource.kind, resource.apiVersion));
    cont = body.metadata?.continue ?? "";
    if (!cont) return { items, resourceVersion: body.metadata?.resourceVersion ?? "" };
  }
}
