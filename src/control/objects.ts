// The subset of Kubernetes / Istio objects the control plane reads. Sources (manifest folder,
// Kubernetes API) put objects of these kinds into the ObjectStore unchanged; compile() is the
// only reader and validates what it uses, so a field typed here may still be missing or wrong.

export const KINDS = [
  "Service",
  "EndpointSlice",
  "Endpoints",
  "Node",
  "DestinationRule",
  "Gateway",
  "VirtualService",
  "Secret",
] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  deletionTimestamp?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: any;
  // EndpointSlice / Endpoints / Secret / Node payloads
  endpoints?: any;
  ports?: any;
  addressType?: string;
  subsets?: any;
  data?: Record<string, string>;
  type?: string;
  status?: any;
}

/** Store key of an object: "namespace/name" (cluster-scoped objects: "/name"). */
export function objectKey(obj: { metadata: ObjectMeta }): string {
  return `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
}

export function isKind(kind: string): kind is Kind {
  return (KINDS as readonly string[]).includes(kind);
}
