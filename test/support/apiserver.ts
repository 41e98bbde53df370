// THE PROJECT'S ONLY STAND-IN. No Kubernetes apiserver binary can be installed on the build
// machines, so this is a small in-process apiserver that speaks the subset of the real protocol
// that the Kubernetes metadata source (src/control/kube) uses, and nothing is faked above it:
// - discovery: /api, /api/v1, /apis, /apis/{group}/{version} (EndpointSlices and the Istio CRDs
//   can be switched on and off, and Istio served as v1alpha3 and/or v1beta1);
// - list with a resourceVersion, `limit` and `continue` tokens (pages come from a snapshot taken
//   at the first page, as etcd does; a token older than a compaction gets HTTP 410 Expired);
//   list items of built-in kinds carry no kind/apiVersion, as on the real apiserver;
// - watch as a chunked stream of JSON lines, headers sent at once; resume from a resourceVersion
//   by replaying history; BOOKMARK events when allowWatchBookmarks=true; timeoutSeconds;
// - 410 Gone for a resourceVersion older than the last compaction: like the real watch cache
//   (cacher.go: "other errors must fail with a watch event of type ERROR") the default answer is
//   HTTP 200 and one ERROR event with a Status of code 410 / reason Expired; `goneAs: "http"`
//   answers HTTP 410 instead, which the client must handle too;
// - TLS (Bun.serve), optionally requiring a client certificate signed by a given CA, and an
//   optional bearer token;
// - PATCH of a Node with a JSON merge patch (application/merge-patch+json, RFC 7386), the one
//   write the agent makes (secure mode publishes its peer ID as an annotation); 415 for other
//   patch types, 404 for a missing Node, 403 while `forbidPatch` is set (RBAC without
//   nodes/patch).
// - RBAC (`rbac`, ./apiserver/rbac.ts): bearer tokens name users, ClusterRoles and
//   ClusterRoleBindings (plus the bootstrap system:discovery) decide every request before it is
//   routed, a denial is a 403 with the apiserver's Forbidden Status, and every decision is kept
//   in `audit` for the test to read.
// Test controls: add/update/remove objects (bumping the resourceVersion), compact(), drop the
// watch connections mid-stream, go down and come back up on the same port.

import { authorize, forbiddenStatus, requestAttributes, type Policy, type UserInfo } from "./apiserver/rbac.ts";
import { createWatchHub, type WatchHub } from "./apiserver/watch.ts";
import {
  apiGroupList, apiResourceList, fieldSelector, groupVersions, RESOURCES, resourceByKind, status,
  type ResourceDef, type Served, type StandInKind,
} from "./apiserver/resources.ts";

export type { StandInKind } from "./apiserver/resources.ts";

export interface StandInOptions {
  port?: number;
  tls?: { cert: string; key: string; ca?: string; requireClientCert?: boolean };
  token?: string;
  endpointSlices?: boolean;
  istioVersions?: readonly string[];
  bookmarkIntervalMs?: number;
  goneAs?: "event" | "http";
  /** Watch events kept for resuming; older resourceVersions get 410. */
  historyLimit?: number;
  /** Enforce RBAC: requests need a bearer token from `tokens`, and the policy must allow them. */
  rbac?: RbacOptions;
}

export interface RbacOptions {
  policy: Policy;
  /** Bearer token -> the user it authenticates as (serviceAccountUser() for a service account). */
  tokens: Readonly<Record<string, UserInfo>>;
}

/** One authorization decision of the RBAC-enforcing stand-in. */
export interface AuditRecord {
  user: string;
  method: string;
  path: string;
  verb: string;
  resourceRequest: boolean;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  allowed: boolean;
  /** Which role and rule allowed it ("edgemesh-agent#0"). */
  by?: string;
}

export interface StandInObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
}

export interface StandInApiServer {
  readonly url: string;
  readonly port: number;
  readonly resourceVersion: number;
  readonly requests: RequestRecord[];
  served: Served;
  /** While true, PATCH answers 403 Forbidden as the apiserver does without the RBAC verb. */
  forbidPatch: boolean;
  /** RBAC in force (undefined: everything allowed); may be replaced while running. */
  rbac: RbacOptions | undefined;
  /** Every RBAC decision, in arrival order (only while `rbac` is set). */
  readonly audit: AuditRecord[];
  add(kind: StandInKind, obj: StandInObject): StandInObject;
  update(kind: StandInKind, obj: StandInObject): StandInObject;
  upsert(kind: StandInKind, obj: StandInObject): StandInObject;
  remove(kind: StandInKind, namespace: string | undefined, name: string): void;
  /** Bulk-load objects that existed "before any watch": no history, one resourceVersion each. */
  load(kind: StandInKind, objs: readonly StandInObject[]): void;
  get(kind: StandInKind, namespace: string | undefined, name: string): StandInObject | undefined;
  count(kind: StandInKind): number;
  /** Forget history: watches resuming from an older resourceVersion get 410. */
  compact(): void;
  /** Cut every open watch; `midEvent` first writes half an event line. */
  dropWatches(midEvent?: boolean): number;
  activeWatches(): number;
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

const key = (ns: string | undefined, name: string) => `${ns ?? ""}/${name}`;

export async function startStandInApiServer(options: StandInOptions = {}): Promise<StandInApiServer> {
  const objects = new Map<StandInKind, Map<string, StandInObject>>(RESOURCES.map((r) => [r.kind, new Map()]));
  const served: Served = {
    endpointSlices: options.endpointSlices ?? true,
    istioVersions: options.istioVersions ?? ["v1alpha3", "v1beta1"],
  };
  let rv = 1000;
  const requests: RequestRecord[] = [];
  const audit: AuditRecord[] = [];
  const pages = new Map<string, { rv: number; items: StandInObject[] }>();
  let pageSeq = 0;
  const hub: WatchHub = createWatchHub({
    historyLimit: options.historyLimit ?? 10_000,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    currentRv: () => rv,
  });

  const json = (body: unknown, code = 200) =>
    new Response(JSON.stringify(body), { status: code, headers: { "content-type": "application/json" } });

  const change = (kind: StandInKind, type: "ADDED" | "MODIFIED" | "DELETED", obj: StandInObject) => {
    rv++;
    const stored: StandInObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    const def = resourceByKind(kind);
    delete stored.kind;
    delete stored.apiVersion;
    const map = objects.get(kind)!;
    if (type === "DELETED") map.delete(key(stored.metadata.namespace, stored.metadata.name));
    else {
      stored.metadata.uid ??= crypto.randomUUID();
      stored.metadata.creationTimestamp ??= new Date().toISOString();
      map.set(key(stored.metadata.namespace, stored.metadata.name), stored);
    }
    hub.publish(def, rv, type, stored);
    return stored;
  };

  const list = (def: ResourceDef, version: string, q: URLSearchParams, ns?: string) => {
    const limit = Number(q.get("limit") ?? 0);
    const token = q.get("continue");
    let snap: { rv: number; items: StandInObject[] };
    let start = 0;
    if (token) {
      const [id, offset] = token.split(":");
      const saved = pages.get(id ?? "");
      if (!saved || saved.rv < hub.compactedRv()) {
        return json(status(410, "Expired", "The provided continue parameter is too old to display a consistent list result."), 410);
      }
      snap = saved;
      start = Number(offset);
    } else {
      const select = fieldSelector(q.get("fieldSelector"));
      if (select instanceof Error) return json(status(400, "BadRequest", select.message), 400);
      const items = [...objects.get(def.kind)!.values()].filter((o) => (!ns || o.metadata.namespace === ns) && (select === null || select(o as never)));
      items.sort((a, b) => (key(a.metadata.namespace, a.metadata.name) < key(b.metadata.namespace, b.metadata.name) ? -1 : 1));
      snap = { rv, items };
    }
    const end = limit > 0 ? Math.min(snap.items.length, start + limit) : snap.items.length;
    const apiVersion = def.group ? `${def.group}/${version}` : version;
    const page = snap.items.slice(start, end).map((o) => (def.builtin ? o : { apiVersion, kind: def.kind, ...o }));
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (end < snap.items.length) {
      let id = token?.split(":")[0];
      if (!id) pages.set((id = String(++pageSeq)), snap);
      metadata.continue = `${id}:${end}`;
      metadata.remainingItemCount = snap.items.length - end;
    }
    return json({ kind: `${def.kind}List`, apiVersion, metadata, items: page });
  };

  const patch = async (def: ResourceDef, name: string, req: Request): Promise<Response> => {
    if (api.forbidPatch) {
      return json(status(403, "Forbidden", `nodes "${name}" is forbidden: User "system:serviceaccount:kubeedge:edgemesh-agent" cannot patch resource "nodes" in API group "" at the cluster scope`), 403);
    }
    const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim();
    if (type !== "application/merge-patch+json") {
      return json(status(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (stand-in)`), 415);
    }
    const current = objects.get(def.kind)!.get(key(undefined, name));
    if (!current) return json(status(404, "NotFound", `nodes "${name}" not found`), 404);
    let body: unknown;
    try {
      body = await req.json();
    } catch (err) {
      return json(status(400, "BadRequest", `invalid JSON: ${(err as Error).message}`), 400);
    }
    const merged = mergePatch(structuredClone(current), body) as StandInObject;
    merged.metadata = { ...merged.metadata, name, resourceVersion: current.metadata.resourceVersion };
    const stored = change(def.kind, "MODIFIED", merged);
    return json({ apiVersion: "v1", kind: def.kind, ...stored });
  };

  const route = (req: Request): Response | Promise<Response> => {
    const url = new URL(req.url);
    const q = url.searchParams;
    requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(q) });
    if (requests.length > 5000) requests.splice(0, 1000);
    if (options.token && req.headers.get("authorization") !== `Bearer ${options.token}`) {
      return json(status(401, "Unauthorized", "Unauthorized"), 401);
    }
    if (api.rbac) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "")?.[1];
      const user = bearer !== undefined ? api.rbac.tokens[bearer] : undefined;
      if (!user) return json(status(401, "Unauthorized", "Unauthorized"), 401);
      const attrs = requestAttributes(req.method, url.pathname, q);
      const decision = authorize(api.rbac.policy, user, attrs);
      audit.push({ user: user.name, method: req.method, ...attrs, allowed: decision.allowed, by: decision.by });
      if (audit.length > 20_000) audit.splice(0, 5_000);
      if (!decision.allowed) return json(forbiddenStatus(user, attrs), 403);
    }
    const parts = url.pathname.split("/").filter(Boolean);
    if (parts[0] === "api" && parts.length === 1) return json({ kind: "APIVersions", versions: ["v1"] });
    if (parts[0] === "apis" && parts.length === 1) return json(apiGroupList(served));
    let group: string, version: string, rest: string[];
    if (parts[0] === "api") [group, version, rest] = ["", parts[1] ?? "", parts.slice(2)];
    else if (parts[0] === "apis") [group, version, rest] = [parts[1] ?? "", parts[2] ?? "", parts.slice(3)];
    else return json(status(404, "NotFound", "the server could not find the requested resource"), 404);
    if (!groupVersions(group, served).includes(version)) {
      return json(status(404, "NotFound", "the server could not find the requested resource"), 404);
    }
    if (rest.length === 0) return json(apiResourceList(group, version));
    let ns: string | undefined;
    if (rest[0] === "namespaces" && rest.length === 3) [ns, rest] = [rest[1], rest.slice(2)];
    const def = RESOURCES.find((r) => r.group === group && r.plural === rest[0]);
    if (def?.kind === "Node" && rest.length === 2 && req.method === "PATCH") return patch(def, rest[1]!, req);
    if (!def || rest.length !== 1 || req.method !== "GET") {
      return json(status(404, "NotFound", "the server could not find the requested resource"), 404);
    }
    if (q.get("watch") === "true" || q.get("watch") === "1") {
      return hub.watch(def, version, q, ns, objects.get(def.kind)!, options.goneAs ?? "event");
    }
    return list(def, version, q, ns);
  };

  let server: ReturnType<typeof Bun.serve> | undefined;
  let port = options.port ?? 0;
  const serve = () => {
    const tls = options.tls
      ? { cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca,
          requestCert: options.tls.requireClientCert ?? false, rejectUnauthorized: options.tls.requireClientCert ?? false }
      : undefined;
    // idleTimeout 0: a watch may legitimately stay silent for minutes.
    server = Bun.serve({ hostname: "127.0.0.1", port, idleTimeout: 0, tls, fetch: route });
    port = server.port!;
  };
  serve();
  const scheme = options.tls ? "https" : "http";

  const api: StandInApiServer = {
    get url() { return `${scheme}://127.0.0.1:${port}`; },
    get port() { return port; },
    get resourceVersion() { return rv; },
    requests,
    served,
    forbidPatch: false,
    rbac: options.rbac,
    audit,
    add(kind, obj) {
      if (objects.get(kind)!.has(key(obj.metadata.namespace, obj.metadata.name))) throw new Error(`stand-in: ${kind} ${obj.metadata.name} exists`);
      return change(kind, "ADDED", obj);
    },
    update(kind, obj) {
      if (!objects.get(kind)!.has(key(obj.metadata.namespace, obj.metadata.name))) throw new Error(`stand-in: ${kind} ${obj.metadata.name} missing`);
      return change(kind, "MODIFIED", obj);
    },
    upsert(kind, obj) {
      const exists = objects.get(kind)!.has(key(obj.metadata.namespace, obj.metadata.name));
      return change(kind, exists ? "MODIFIED" : "ADDED", obj);
    },
    remove(kind, namespace, name) {
      const obj = objects.get(kind)!.get(key(namespace, name));
      if (!obj) throw new Error(`stand-in: ${kind} ${namespace}/${name} missing`);
      change(kind, "DELETED", obj);
    },
    load(kind, objs) {
      const map = objects.get(kind)!;
      for (const obj of objs) {
        rv++;
        const stored: StandInObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv), uid: crypto.randomUUID() } };
        map.set(key(stored.metadata.namespace, stored.metadata.name), stored);
      }
      hub.compact(rv); // nothing before this point can be replayed
    },
    get: (kind, namespace, name) => objects.get(kind)!.get(key(namespace, name)),
    count: (kind) => objects.get(kind)!.size,
    compact() {
      hub.compact(rv);
      pages.clear();
    },
    dropWatches: (midEvent = false) => hub.dropAll(midEvent),
    activeWatches: () => hub.size(),
    async down() {
      hub.dropAll(false);
      await server?.stop(true);
      server = undefined;
    },
    async up() {
      if (!server) serve();
    },
    async stop() {
      hub.close();
      await server?.stop(true);
      server = undefined;
    },
  };
  return api;
}


/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
