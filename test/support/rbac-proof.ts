// Pieces of the RBAC proof (test/integration/rbac-proof.test.ts), reusable for any workload in
// deploy/ (the agent's and the gateway's): the stand-in apiserver as a process inside a test node's network
// namespace, enforcing the ClusterRoles and bindings of rendered manifests, driven through its
// control API; a kubeconfig that authenticates as the workload's service account; and the
// comparison of what the workload did with what its role grants.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { dump } from "js-yaml";
import type { TestNode } from "./netns.ts";
import type { AuditRecord, StandInObject } from "./apiserver.ts";
import type { StandInKind } from "./apiserver/resources.ts";
import { grant, grantsOf, type ClusterRole } from "./apiserver/rbac.ts";
import type { K8sObject } from "./deploy.ts";
import { REPO } from "./deploy.ts";

export interface RbacApi {
  /** The API as seen from inside the node's namespace. */
  readonly url: string;
  load(kind: StandInKind, objs: StandInObject[]): Promise<void>;
  apply(op: "add" | "update" | "upsert", kind: StandInKind, obj: StandInObject): Promise<void>;
  object(kind: StandInKind, namespace: string | undefined, name: string): Promise<StandInObject | undefined>;
  audit(): Promise<AuditRecord[]>;
  /** The requests served so far, with their query (the audit has paths only). */
  requests(): Promise<{ method: string; path: string; query: Record<string, string> }[]>;
}

/**
 * Start the stand-in in `node`'s namespace enforcing the RBAC objects of `rendered`; `token`
 * authenticates as `serviceAccount` ("namespace/name"). The process dies with the test bed.
 */
export async function startRbacApi(node: TestNode, dir: string, rendered: readonly K8sObject[], o: { token: string; serviceAccount: string; endpointSlices?: boolean }): Promise<RbacApi> {
  const file = join(dir, `rbac-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, rendered.filter((x) => x.kind === "ClusterRole" || x.kind === "ClusterRoleBinding").map((x) => dump(x)).join("---\n"));
  const argv = [process.execPath, join(REPO, "test/support/apiserver/main.ts"), "--rbac", file, "--token", `${o.token}=${o.serviceAccount}`];
  if (o.endpointSlices === false) argv.push("--no-endpointslices");
  const proc = node.spawn(argv);
  const line = await proc.waitFor(/^\{"url".*\}$/m, 15_000);
  const { url, control } = JSON.parse(line[0]) as { url: string; control: string };
  const post = async (path: string, body: unknown) => {
    await node.must(["curl", "-sS", "-f", "-X", "POST", "-H", "content-type: application/json", "--data-binary", "@-", control + path], { stdin: JSON.stringify(body) });
  };
  return {
    url,
    load: (kind, objs) => post("/load", { kind, objs }),
    apply: (op, kind, obj) => post("/apply", { op, kind, obj }),
    async object(kind, namespace, name) {
      const q = new URLSearchParams({ kind, namespace: namespace ?? "", name });
      const res = await node.exec(["curl", "-sS", "-f", `${control}/object?${q}`]);
      return res.code === 0 ? JSON.parse(res.stdout) : undefined;
    },
    audit: async () => JSON.parse((await node.must(["curl", "-sS", "-f", `${control}/audit`])).stdout),
    requests: async () => JSON.parse((await node.must(["curl", "-sS", "-f", `${control}/requests`])).stdout),
  };
}

/** A kubeconfig for `server` with a bearer token (the agent's manual mode reads it). */
export function writeKubeconfig(file: string, server: string, token: string): void {
  writeFileSync(
    file,
    dump({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "stand-in", cluster: { server } }],
      users: [{ name: "workload", user: { token } }],
      contexts: [{ name: "stand-in", context: { cluster: "stand-in", user: "workload" } }],
      "current-context": "stand-in",
    }),
  );
}

/** The "verb group/resource" grants a user's allowed resource requests used (discovery left out). */
export function usedGrants(audit: readonly AuditRecord[], user: string): string[] {
  const used = audit.filter((a) => a.user === user && a.allowed && a.resourceRequest).map((a) => grant(a.verb, a.apiGroup, a.subresource ? `${a.resource}/${a.subresource}` : a.resource));
  return [...new Set(used)].sort();
}

export function denied(audit: readonly AuditRecord[]): string[] {
  return audit.filter((a) => !a.allowed).map((a) => `${a.method} ${a.path} (${a.verb} ${a.apiGroup || "core"}/${a.resource || a.path})`);
}

export function roleGrants(rendered: readonly K8sObject[], name: string): string[] {
  const role = rendered.find((o) => o.kind === "ClusterRole" && o.metadata.name === name);
  if (!role) throw new Error(`no ClusterRole ${name} in the rendered manifests`);
  return grantsOf(role as unknown as ClusterRole);
}
