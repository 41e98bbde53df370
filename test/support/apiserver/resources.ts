// The resource table and discovery documents of the stand-in apiserver (see ../apiserver.ts).
// Only the kinds the Kubernetes source watches; paths and list kinds as the real apiserver
// serves them.

export type StandInKind = "Service" | "Endpoints" | "EndpointSlice" | "Node" | "DestinationRule" | "Gateway" | "VirtualService" | "Secret";

export interface ResourceDef {
  kind: StandInKind;
  group: string; // "" for the core group
  plural: string;
  namespaced: boolean;
  /** Built-in types: list items carry no kind/apiVersion (the real apiserver strips them). */
  builtin: boolean;
}

export const RESOURCES: readonly ResourceDef[] = [
  { kind: "Service", group: "", plural: "services", namespaced: true, builtin: true },
  { kind: "Endpoints", group: "", plural: "endpoints", namespaced: true, builtin: true },
  { kind: "Node", group: "", plural: "nodes", namespaced: false, builtin: true },
  { kind: "Secret", group: "", plural: "secrets", namespaced: true, builtin: true },
  { kind: "EndpointSlice", group: "discovery.k8s.io", plural: "endpointslices", namespaced: true, builtin: true },
  { kind: "DestinationRule", group: "networking.istio.io", plural: "destinationrules", namespaced: true, builtin: false },
  { kind: "Gateway", group: "networking.istio.io", plural: "gateways", namespaced: true, builtin: false },
  { kind: "VirtualService", group: "networking.istio.io", plural: "virtualservices", namespaced: true, builtin: false },
];

export const ISTIO_GROUP = "networking.istio.io";

export function resourceByKind(kind: string): ResourceDef {
  const def = RESOURCES.find((r) => r.kind === kind);
  if (!def) throw new Error(`stand-in apiserver: unknown kind ${kind}`);
  return def;
}

export interface Served {
  endpointSlices: boolean;
  istioVersions: readonly string[];
}

/** Versions a group serves right now ("v1" for core and discovery when enabled). */
export function groupVersions(group: string, served: Served): readonly string[] {
  if (group === "") return ["v1"];
  if (group === "discovery.k8s.io") return served.endpointSlices ? ["v1"] : [];
  if (group === ISTIO_GROUP) return served.istioVersions;
  return [];
}

export function apiGroupList(served: Served) {
  const groups = [];
  for (const name of ["discovery.k8s.io", ISTIO_GROUP]) {
    const versions = groupVersions(name, served);
    if (versions.length === 0) continue;
    const list = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    groups.push({ name, versions: list, preferredVersion: list[list.length - 1] });
  }
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function apiResourceList(group: string, version: string) {
  const resources = RESOURCES.filter((r) => r.group === group).map((r) => ({
    name: r.plural,
    singularName: r.kind.toLowerCase(),
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: ["get", "list", "watch"],
  }));
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group ? `${group}/${version}` : version, resources };
}

export function status(code: number, reason: string, message: string) {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

/**
 * A field selector as the apiserver reads it for the fields the stand-in supports: "a=b" and
 * "a!=b" terms joined by commas, on metadata.name, metadata.namespace and type (Secrets). Returns
 * null for "" (everything), else a predicate; unknown fields are a 400 (as the apiserver's
 * "field label not supported").
 */
export function fieldSelector(selector: string | null): ((obj: { metadata: { name?: string; namespace?: string }; type?: string }) => boolean) | null | Error {
  if (!selector) return null;
  const terms: { field: string; value: string; negate: boolean }[] = [];
  for (const raw of selector.split(",")) {
    const m = /^([a-zA-Z.]+)(!=|==|=)(.*)$/.exec(raw.trim());
    if (!m) return new Error(`invalid field selector term ${JSON.stringify(raw)}`);
    if (!["metadata.name", "metadata.namespace", "type"].includes(m[1]!)) return new Error(`field label not supported: ${m[1]}`);
    terms.push({ field: m[1]!, value: m[3]!, negate: m[2] === "!=" });
  }
  return (obj) => terms.every((t) => {
    const v = t.field === "type" ? obj.type : t.field === "metadata.name" ? obj.metadata.name : obj.metadata.namespace;
    return (v === t.value) !== t.negate;
  });
}
