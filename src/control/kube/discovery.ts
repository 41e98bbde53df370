// Which API paths to watch. Asks /apis once (one request answers both questions):
// - EndpointSlices (discovery.k8s.io/v1) when served, else v1 Endpoints;
// - Istio networking.istio.io at v1beta1, else v1alpha3 (else v1, newer Istio). Without the group
//   the Istio kinds are still watched as optional resources: a 404 reads as "no objects", is
//   logged once, and the informer looks again now and then, so CRDs installed later show up.
// A server without discovery (404 on /apis) is probed with one-item lists instead.

import type { Kind } from "../objects.ts";
import type { KubeFetch } from "./fetch-tls.ts";
import type { ResourceRef } from "./informers.ts";
import { apiError } from "./errors.ts";

/** Logical kinds the source can watch. "EndpointSlice" falls back to "Endpoints". */
export type WatchedKind = "Service" | "EndpointSlice" | "Node" | "DestinationRule" | "Gateway" | "VirtualService" | "Secret";

/** What the edge gateway watches: the agent's kinds plus TLS Secrets (its certificates). */
export const GATEWAY_KINDS: readonly WatchedKind[] = ["Service", "EndpointSlice", "Node", "DestinationRule", "Gateway", "VirtualService", "Secret"];

/** Only TLS Secrets: the gateway reads certificates, never the cluster's other Secrets. */
export const TLS_SECRET_SELECTOR = "type=kubernetes.io/tls";

export const DEFAULT_KINDS: readonly WatchedKind[] = ["Service", "EndpointSlice", "Node", "DestinationRule", "Gateway", "VirtualService"];

const ISTIO = "networking.istio.io";
const ISTIO_VERSIONS = ["v1beta1", "v1alpha3", "v1"];
const ISTIO_PLURAL: Record<string, string> = { DestinationRule: "destinationrules", Gateway: "gateways", VirtualService: "virtualservices" };

interface GroupList {
  groups?: { name: string; versions?: { version: string }[] }[];
}

async function probe(f: KubeFetch, path: string): Promise<boolean> {
  const res = await f.request(`${path}?limit=1`);
  await res.body?.cancel();
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw await apiError(`probe ${path}`, res);
}

export async function discoverResources(f: KubeFetch, kinds: readonly WatchedKind[] = DEFAULT_KINDS): Promise<ResourceRef[]> {
  let slices: boolean;
  let istioVersion: string | undefined;
  const res = await f.request("/apis");
  if (res.status === 200) {
    const list = (await res.json()) as GroupList;
    const versions = (name: string) => new Set((list.groups ?? []).find((g) => g.name === name)?.versions?.map((v) => v.version) ?? []);
    slices = versions("discovery.k8s.io").has("v1");
    const istio = versions(ISTIO);
    istioVersion = ISTIO_VERSIONS.find((v) => istio.has(v));
  } else if (res.status === 404) {
    await res.body?.cancel();
    slices = kinds.includes("EndpointSlice") && (await probe(f, "/apis/discovery.k8s.io/v1/endpointslices"));
    for (const v of ISTIO_VERSIONS) {
      if (!kinds.some((k) => k in ISTIO_PLURAL)) break;
      if (await probe(f, `/apis/${ISTIO}/${v}/destinationrules`)) {
        istioVersion = v;
        break;
      }
    }
  } else {
    throw await apiError("discovery /apis", res);
  }

  const refs: ResourceRef[] = [];
  for (const kind of kinds) {
    if (kind === "Service") refs.push({ kind, path: "/api/v1/services", apiVersion: "v1" });
    else if (kind === "Node") refs.push({ kind, path: "/api/v1/nodes", apiVersion: "v1" });
    else if (kind === "Secret") refs.push({ kind, path: "/api/v1/secrets", apiVersion: "v1", fieldSelector: TLS_SECRET_SELECTOR });
    else if (kind === "EndpointSlice") {
      refs.push(slices
        ? { kind: "EndpointSlice", path: "/apis/discovery.k8s.io/v1/endpointslices", apiVersion: "discovery.k8s.io/v1" }
        : { kind: "Endpoints", path: "/api/v1/endpoints", apiVersion: "v1" });
    } else {
      const v = istioVersion ?? ISTIO_VERSIONS[0]!;
      refs.push({ kind: kind as Kind, path: `/apis/${ISTIO}/${v}/${ISTIO_PLURAL[kind]}`, apiVersion: `${ISTIO}/${v}`, optional: true });
    }
  }
  return refs;
}
