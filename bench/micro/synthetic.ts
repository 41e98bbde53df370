// A synthetic cluster for the compile and lookup benchmarks: `services` ClusterIP Services in 10
// namespaces, each with one TCP port (named, targetPort by name) and `endpointsPerService` ready
// endpoints in EndpointSlices of at most 100 (as the EndpointSlice controller cuts them), spread
// over 50 nodes. Every 10th service has a DestinationRule (alternating RANDOM / source-IP hash)
// and every 20th uses ClientIP affinity, so compile() does the per-service work it does in a
// real cluster. Deterministic: the same arguments give the same objects.

import { createObjectStore, type KubeObject, type ObjectStore } from "../../src/control/index.ts";

export interface SyntheticOptions {
  services: number;
  endpointsPerService: number;
}

const SLICE_MAX = 100;
const NAMESPACES = 10;
const NODES = 50;

function ip(prefix: number, n: number): string {
  return `${prefix}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export function syntheticObjects(options: SyntheticOptions): { Service: KubeObject[]; EndpointSlice: KubeObject[]; DestinationRule: KubeObject[] } {
  const services: KubeObject[] = [];
  const slices: KubeObject[] = [];
  const rules: KubeObject[] = [];
  let endpointSerial = 0;
  for (let s = 0; s < options.services; s++) {
    const namespace = `ns-${s % NAMESPACES}`;
    const name = `svc-${s}`;
    services.push({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace, resourceVersion: String(s + 1) },
      spec: {
        type: "ClusterIP",
        clusterIP: ip(10, s + 1),
        clusterIPs: [ip(10, s + 1)],
        ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }],
        ...(s % 20 === 0 ? { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } } : {}),
      },
    });
    if (s % 10 === 0) {
      rules.push({
        apiVersion: "networking.istio.io/v1beta1",
        kind: "DestinationRule",
        metadata: { name, namespace },
        spec: {
          host: name,
          trafficPolicy: {
            loadBalancer: s % 20 === 0 ? { simple: "RANDOM" } : { consistentHash: { useSourceIp: true } },
          },
        },
      });
    }
    for (let first = 0, part = 0; first < options.endpointsPerService; first += SLICE_MAX, part++) {
      const endpoints = [];
      for (let e = first; e < Math.min(first + SLICE_MAX, options.endpointsPerService); e++) {
        const serial = endpointSerial++;
        endpoints.push({
          addresses: [ip(172, serial + 1)],
          conditions: { ready: true, serving: true, terminating: false },
          nodeName: `node-${serial % NODES}`,
          zone: `zone-${serial % 3}`,
        });
      }
      slices.push({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: `${name}-${part}`, namespace, labels: { "kubernetes.io/service-name": name } },
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        endpoints,
      });
    }
  }
  return { Service: services, EndpointSlice: slices, DestinationRule: rules };
}

export function syntheticStore(options: SyntheticOptions): ObjectStore {
  const store = createObjectStore();
  store.replace(syntheticObjects(options));
  return store;
}
