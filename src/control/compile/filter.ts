// EdgeMesh's service filter. EdgeMesh (pkg/proxy/server.go) builds its Service/Endpoints
// informers with the label selector
//   service.edgemesh.kubeedge.io/service-proxy-name  DoesNotExist   (mode FilterIfLabelExists)
//   service.edgemesh.kubeedge.io/service-proxy-name  Exists         (any other mode)
// so only the label's presence counts, never its value (an empty value is still "exists").
// The filter only decides which services get a listener: EdgeMesh's DNS module lists Services
// without that selector, so filtered services keep their DNS record (kube-proxy or another
// proxy serves their ClusterIP), and compile() keeps their ServiceRecord too.

import type { KubeObject } from "../objects.ts";

export const SERVICE_PROXY_NAME_LABEL = "service.edgemesh.kubeedge.io/service-proxy-name";

export type ServiceFilterMode = "FilterIfLabelExists" | "FilterIfLabelDoesNotExists";

/** True when EdgeMesh would proxy this service under the given mode. */
export function isProxied(service: KubeObject, mode: ServiceFilterMode): boolean {
  const labels = service.metadata.labels;
  const hasLabel =
    labels !== null && typeof labels === "object" && Object.prototype.hasOwnProperty.call(labels, SERVICE_PROXY_NAME_LABEL);
  // EdgeMesh compares against FilterIfLabelExists only; every other value selects "Exists".
  return mode === "FilterIfLabelExists" ? !hasLabel : hasLabel;
}
