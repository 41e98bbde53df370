// The stand-in apiserver (../apiserver.ts) as its own process: so a benchmark can measure the
// agent's memory without the stand-in's, and so a test can run it inside a network namespace
// next to an agent. Prints one JSON line {"url","control"} on stdout.
//   bun test/support/apiserver/main.ts [--rbac FILE] [--token TOKEN=NAMESPACE/SERVICEACCOUNT]...
//     [--no-endpointslices]
// --rbac: YAML documents (kubectl kustomize output will do); its ClusterRoles and
// ClusterRoleBindings are enforced, and each --token authenticates as that service account.
// Control API (plain http on 127.0.0.1): POST /apply {op: "add"|"update"|"upsert"|"remove",
// kind, obj | namespace+name}; POST /load {kind, objs}; POST /seed {services, endpointsPerService};
// GET /audit (the RBAC decisions so far); GET /requests (path and query of the last requests); GET /object?kind=K&namespace=NS&name=N.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadAll } from "js-yaml";
import { startStandInApiServer, type StandInKind } from "../apiserver.ts";
import * as fx from "./fixtures.ts";
import { policyFrom, serviceAccountUser, type UserInfo } from "./rbac.ts";

const { values } = parseArgs({
  options: {
    rbac: { type: "string" },
    token: { type: "string", multiple: true },
    "no-endpointslices": { type: "boolean" },
  },
});

let rbac;
if (values.rbac) {
  const tokens: Record<string, UserInfo> = {};
  for (const t of values.token ?? []) {
    const m = /^([^=]+)=([^/]+)\/(.+)$/.exec(t);
    if (!m) throw new Error(`--token ${t}: expected TOKEN=NAMESPACE/SERVICEACCOUNT`);
    tokens[m[1]!] = serviceAccountUser(m[2]!, m[3]!);
  }
  const objects = (loadAll(readFileSync(values.rbac, "utf8")) as ({ kind: string } | null)[]).filter((o) => o !== null);
  rbac = { policy: policyFrom(objects), tokens };
}

const api = await startStandInApiServer({ historyLimit: 100_000, rbac, endpointSlices: !values["no-endpointslices"] });

function seed(services: number, perService: number): void {
  const svcs = [];
  const slices = [];
  for (let i = 0; i < services; i++) {
    const ns = `ns-${i % 100}`;
    const name = `svc-${i}`;
    svcs.push(fx.service(ns, name, `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`));
    const ips = [];
    for (let j = 0; j < perService; j++) {
      const n = i * perService + j;
      ips.push(`10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`);
    }
    slices.push(fx.endpointSlice(ns, name, ips));
  }
  api.load("Service", svcs);
  api.load("EndpointSlice", slices);
}

const control = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method === "GET") {
      if (path === "/audit") return Response.json(api.audit);
      if (path === "/requests") return Response.json(api.requests);
      if (path === "/object") {
        const q = url.searchParams;
        const obj = api.get(q.get("kind") as StandInKind, q.get("namespace") || undefined, q.get("name") ?? "");
        return obj ? Response.json(obj) : new Response("not found", { status: 404 });
      }
      return new Response("not found", { status: 404 });
    }
    const body = (await req.json()) as any;
    if (path === "/seed") seed(body.services, body.endpointsPerService);
    else if (path === "/load") api.load(body.kind as StandInKind, body.objs);
    else if (path === "/apply") {
      const kind = body.kind as StandInKind;
      if (body.op === "remove") api.remove(kind, body.namespace, body.name);
      else api[body.op as "add" | "update" | "upsert"](kind, body.obj);
    } else return new Response("not found", { status: 404 });
    return Response.json({ resourceVersion: api.resourceVersion });
  },
});

console.log(JSON.stringify({ url: api.url, control: `http://127.0.0.1:${control.port}` }));
process.on("SIGTERM", async () => {
  control.stop(true);
  await api.stop();
  process.exit(0);
});
