// The resource table and discovery documents of the stand-in apiserver (see ../apiserver.ts).
// Only the kinds the Kubernetes source watches; paths and list kinds as the real apiserver
// serves them.

export type StandInKind = "Service" | "Endpoints" | "EndpointSlice" | "Node" | "DestinationRule" | "Gateway" | "VirtualService";

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
