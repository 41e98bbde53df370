// The stand-in apiserver's RBAC (test/support/apiserver/rbac.ts): request attributes, rule
// matching and denials as the real apiserver produces them, then the in-process stand-in
// enforcing a role over HTTP.

import { afterEach, describe, expect, test } from "bun:test";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import {
  authorize, forbiddenStatus, grantsOf, policyFrom, requestAttributes, ruleAllows, serviceAccountUser,
  type ClusterRole, type ClusterRoleBinding,
} from "../support/apiserver/rbac.ts";

const attrs = (method: string, url: string) => {
  const u = new URL(url, "http://x");
  return requestAttributes(method, u.pathname, u.searchParams);
};
const AGENT = serviceAccountUser("kubeedge", "edgemesh-agent");
const role: ClusterRole = {
  kind: "ClusterRole",
  metadata: { name: "edgemesh-agent" },
  rules: [
    { apiGroups: [""], resources: ["services", "nodes"], verbs: ["list", "watch"] },
    { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
  ],
};
const binding: ClusterRoleBinding = {
  kind: "ClusterRoleBinding",
  metadata: { name: "edgemesh-agent" },
  roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edgemesh-agent" },
  subjects: [{ kind: "ServiceAccount", name: "edgemesh-agent", namespace: "kubeedge" }],
};
const policy = policyFrom([role, binding]);

describe("request attributes (requestinfo.go)", () => {
  test("discovery paths are non-resource requests", () => {
    for (const p of ["/api", "/api/v1", "/apis", "/apis/discovery.k8s.io", "/apis/discovery.k8s.io/v1"]) {
      expect(attrs("GET", p)).toMatchObject({ resourceRequest: false, verb: "get", path: p });
    }
  });

  test("collections are list, ?watch=true is watch, a named object is get", () => {
    expect(attrs("GET", "/api/v1/services?limit=500")).toMatchObject({ resourceRequest: true, verb: "list", apiGroup: "", resource: "services", namespace: "", name: "" });
    expect(attrs("GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion=5")).toMatchObject({ verb: "watch", apiGroup: "discovery.k8s.io", resource: "endpointslices" });
    expect(attrs("GET", "/api/v1/namespaces/demo/services")).toMatchObject({ verb: "list", namespace: "demo", resource: "services" });
    expect(attrs("GET", "/api/v1/nodes/n1")).toMatchObject({ verb: "get", resource: "nodes", name: "n1" });
  });

  test("writes map to their verbs, with subresources and collections", () => {
    expect(attrs("PATCH", "/api/v1/nodes/n1")).toMatchObject({ verb: "patch", resource: "nodes", name: "n1", subresource: "" });
    expect(attrs("PATCH", "/api/v1/nodes/n1/status")).toMatchObject({ verb: "patch", resource: "nodes", subresource: "status" });
    expect(attrs("POST", "/api/v1/namespaces/demo/services")).toMatchObject({ verb: "create", namespace: "demo" });
    expect(attrs("DELETE", "/api/v1/namespaces/demo/services")).toMatchObject({ verb: "deletecollection" });
    expect(attrs("DELETE", "/api/v1/namespaces/demo/services/web")).toMatchObject({ verb: "delete", name: "web" });
  });
});

describe("rules and bindings", () => {
  test("verbs, groups and resources must all match; wildcards and subresources as in RBAC", () => {
    expect(ruleAllows(role.rules![0]!, attrs("GET", "/api/v1/services"))).toBe(true);
    expect(ruleAllows(role.rules![0]!, attrs("GET", "/api/v1/nodes/n1"))).toBe(false); // get is not list
    expect(ruleAllows(role.rules![0]!, attrs("GET", "/apis/discovery.k8s.io/v1/services"))).toBe(false); // wrong group
    expect(ruleAllows({ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }, attrs("PATCH", "/api/v1/nodes/n1/status"))).toBe(true);
    expect(ruleAllows({ apiGroups: [""], resources: ["nodes"], verbs: ["patch"] }, attrs("PATCH", "/api/v1/nodes/n1/status"))).toBe(false);
    expect(ruleAllows({ apiGroups: [""], resources: ["*/status"], verbs: ["patch"] }, attrs("PATCH", "/api/v1/nodes/n1/status"))).toBe(true);
    expect(ruleAllows({ apiGroups: [""], resources: ["nodes"], verbs: ["patch"], resourceNames: ["n2"] }, attrs("PATCH", "/api/v1/nodes/n1"))).toBe(false);
    expect(ruleAllows({ verbs: ["get"], nonResourceURLs: ["/apis/*"] }, attrs("GET", "/apis/x.io/v1"))).toBe(true);
    expect(ruleAllows({ verbs: ["get"], nonResourceURLs: ["/apis"] }, attrs("GET", "/apis/x.io/v1"))).toBe(false);
  });

  test("the role binds to its service account only; discovery is open to any authenticated user", () => {
    expect(authorize(policy, AGENT, attrs("GET", "/api/v1/services?watch=true"))).toEqual({ allowed: true, by: "edgemesh-agent#0" });
    expect(authorize(policy, AGENT, attrs("GET", "/apis"))).toEqual({ allowed: true, by: "system:discovery#0" });
    const other = serviceAccountUser("default", "edgemesh-agent");
    expect(authorize(policy, other, attrs("GET", "/api/v1/services")).allowed).toBe(false);
    expect(authorize(policy, other, attrs("GET", "/api/v1")).allowed).toBe(true);
    expect(authorize(policy, AGENT, attrs("GET", "/api/v1/secrets")).allowed).toBe(false);
    expect(authorize(policy, AGENT, attrs("GET", "/metrics")).allowed).toBe(false);
  });

  test("denials read as the apiserver writes them", () => {
    expect(forbiddenStatus(AGENT, attrs("PATCH", "/api/v1/nodes/n1")).message).toBe(
      'nodes "n1" is forbidden: User "system:serviceaccount:kubeedge:edgemesh-agent" cannot patch resource "nodes" in API group "" at the cluster scope',
    );
    const slices = forbiddenStatus(AGENT, attrs("GET", "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"));
    expect(slices).toEqual({
      kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", reason: "Forbidden", code: 403,
      message: 'endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:kubeedge:edgemesh-agent" cannot list resource "endpointslices" in API group "discovery.k8s.io" in the namespace "demo"',
      details: { group: "discovery.k8s.io", kind: "endpointslices" },
    });
    expect(forbiddenStatus(AGENT, attrs("GET", "/metrics")).message).toBe('forbidden: User "system:serviceaccount:kubeedge:edgemesh-agent" cannot get path "/metrics"');
  });

  test("a role's grants expand to verb group/resource pairs", () => {
    expect(grantsOf(role)).toEqual(["list core/nodes", "list core/services", "list discovery.k8s.io/endpointslices", "watch core/nodes", "watch core/services", "watch discovery.k8s.io/endpointslices"]);
  });
});

describe("the stand-in enforcing a role over HTTP", () => {
  let api: StandInApiServer | undefined;
  afterEach(async () => {
    await api?.stop();
    api = undefined;
  });
  const get = (path: string, token?: string, method = "GET") =>
    fetch(api!.url + path, { method, headers: token ? { authorization: `Bearer ${token}`, "content-type": "application/merge-patch+json" } : {}, body: method === "PATCH" ? "{}" : undefined });

  test("allowed calls are served, others get 401 or 403 with a Status body, and every decision is audited", async () => {
    api = await startStandInApiServer({ rbac: { policy, tokens: { "agent-token": AGENT } } });
    api.add("Service", { metadata: { name: "web", namespace: "demo" }, spec: { clusterIP: "10.96.0.10", ports: [{ port: 80 }] } });
    api.add("Node", { metadata: { name: "n1" } });
    const list = await get("/api/v1/services", "agent-token");
    expect(list.status).toBe(200);
    expect(((await list.json()) as any).items.length).toBe(1);
    expect((await get("/apis", "agent-token")).status).toBe(200);

    expect((await get("/api/v1/services")).status).toBe(401);
    expect((await get("/api/v1/services", "wrong")).status).toBe(401);

    const patch = await get("/api/v1/nodes/n1", "agent-token", "PATCH");
    expect(patch.status).toBe(403);
    expect(await patch.json()).toMatchObject({ kind: "Status", reason: "Forbidden", code: 403, message: expect.stringContaining('cannot patch resource "nodes"') });
    expect(api.get("Node", undefined, "n1")!.metadata.annotations).toBeUndefined(); // nothing written

    // Decided before routing, as the real apiserver: a forbidden unknown resource is 403, not 404.
    expect((await get("/api/v1/secrets", "agent-token")).status).toBe(403);

    expect(api.audit.map((a) => `${a.allowed ? "allow" : "deny"} ${a.verb} ${a.resource || a.path}`)).toEqual([
      "allow list services", "allow get /apis", "deny patch nodes", "deny list secrets",
    ]);

    // The policy can change while running: granting the verb lets the same PATCH through.
    const granted: ClusterRole = { ...role, rules: [...role.rules!, { apiGroups: [""], resources: ["nodes"], verbs: ["patch"] }] };
    api.rbac = { policy: policyFrom([granted, binding]), tokens: { "agent-token": AGENT } };
    expect((await get("/api/v1/nodes/n1", "agent-token", "PATCH")).status).toBe(200);
  });
});
