// Object builders for the stand-in apiserver: minimal but well-formed Kubernetes objects.

import type { StandInObject } from "../apiserver.ts";

export function service(ns: string, name: string, clusterIP: string, port = 80): StandInObject {
  return {
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: { type: "ClusterIP", clusterIP, clusterIPs: [clusterIP], selector: { app: name }, ports: [{ name: "http", port, protocol: "TCP", targetPort: 8080 }] },
  };
}

export function endpointSlice(ns: string, svc: string, ips: readonly string[], opts: { suffix?: string; node?: string } = {}): StandInObject {
  return {
    metadata: { name: `${svc}-${opts.suffix ?? "abcde"}`, namespace: ns, labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: ips.map((ip, i) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: opts.node ?? `node-${i % 3}`,
      targetRef: { kind: "Pod", namespace: ns, name: `${svc}-pod-${i}` },
    })),
  };
}

export function endpoints(ns: string, svc: string, ips: readonly string[]): StandInObject {
  return {
    metadata: { name: svc, namespace: ns },
    subsets: [{ addresses: ips.map((ip) => ({ ip, nodeName: "node-0" })), ports: [{ name: "http", port: 8080, protocol: "TCP" }] }],
  };
}

export function node(name: string, ip: string): StandInObject {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name }, managedFields: [{ manager: "kubelet", operation: "Update" }] },
    status: { addresses: [{ type: "InternalIP", address: ip }], images: [{ names: ["big/image:1"], sizeBytes: 1 }] },
  };
}

export function destinationRule(ns: string, host: string, lb: Record<string, unknown>): StandInObject {
  return { metadata: { name: host, namespace: ns }, spec: { host, trafficPolicy: { loadBalancer: lb } } };
}

export function gateway(ns: string, name: string, port = 23333): StandInObject {
  return { metadata: { name, namespace: ns }, spec: { selector: { "kubeedge.io/edgemesh": "edgemesh-gateway" }, servers: [{ port: { number: port, name: "http-0", protocol: "HTTP" }, hosts: ["*"] }] } };
}

export function virtualService(ns: string, name: string, gatewayName: string, dest: string): StandInObject {
  return { metadata: { name, namespace: ns }, spec: { hosts: ["*"], gateways: [gatewayName], http: [{ match: [{ uri: { prefix: "/" } }], route: [{ destination: { host: dest, port: { number: 80 } } }] }] } };
}
