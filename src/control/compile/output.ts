// One Service (with its slices / Endpoints and DestinationRule) -> its DNS record and its
// listener ports. The output depends on nothing else, which is what lets a Compiler reuse it
// while all of those inputs are the same objects as in the previous compile.

import type { KubeObject } from "../objects.ts";
import { type Endpoint, type LbPolicy, portKey, type Protocol, type ServicePort, type ServiceRecord } from "../table.ts";
import { EndpointCollector, NO_ENDPOINTS, sortUnique } from "./endpoints.ts";
import { isProxied, type ServiceFilterMode } from "./filter.ts";
import { policyFor } from "./policy.ts";
import { affinityOf, clusterIPsOf, NO_STRINGS, type PortSpec, servicePorts, serviceType, stringList } from "./service.ts";

export interface ServiceInputs {
  readonly svc: KubeObject;
  /** The service's EndpointSlices (index order); undefined when it has none. */
  readonly slices: readonly KubeObject[] | undefined;
  /** v1 Endpoints, looked up only when there are no slices. */
  readonly legacy: KubeObject | undefined;
  readonly rule: KubeObject | undefined;
}

export interface ServiceOutput {
  /** null when the Service is unusable (no spec). */
  readonly record: ServiceRecord | null;
  /** In key order. */
  readonly ports: readonly ServicePort[];
  /** Replayed when the output is reused, so every compile reports the same problems. */
  readonly warnings: readonly string[];
}

const NO_PORTS: readonly ServicePort[] = Object.freeze([]);
const NO_WARNINGS: readonly string[] = Object.freeze([]);

export function compileService(
  input: ServiceInputs,
  namespace: string,
  name: string,
  mode: ServiceFilterMode,
  portLists: PortListCache,
): ServiceOutput {
  let warnings: string[] | null = null;
  const warn = (msg: string): void => {
    (warnings ??= []).push(msg);
  };
  const id = `${namespace}/${name}`;
  const { svc, slices, legacy } = input;
  const spec = svc.spec;
  if (spec === null || typeof spec !== "object") {
    warn(`Service ${id}: spec is missing; ignored`);
    return { record: null, ports: NO_PORTS, warnings: warnings ?? NO_WARNINGS };
  }
  const type = serviceType(spec, id, warn);
  const specs = servicePorts(spec.ports, id, warn);
  const clusterIPs = type === "Headless" || type === "ExternalName" ? NO_STRINGS : clusterIPsOf(spec);
  const record: ServiceRecord = Object.freeze({
    namespace,
    name,
    type,
    clusterIPs,
    externalName: type === "ExternalName" && typeof spec.externalName === "string" ? spec.externalName : "",
    ports: recordPorts(specs, portLists),
    endpoints: type === "Headless" ? headlessEndpoints(specs, slices, legacy) : NO_ENDPOINTS,
  });

  if (type === "Headless" || type === "ExternalName" || specs.length === 0 || !isProxied(svc, mode)) {
    return { record, ports: NO_PORTS, warnings: warnings ?? NO_WARNINGS };
  }
  const policy: LbPolicy = policyFor(input.rule, warn);
  const affinity = affinityOf(spec, id, warn);
  const externalIPs = stringList(spec.externalIPs);
  const ports = new Array<ServicePort>(specs.length);
  for (let p = 0; p < specs.length; p++) {
    const ps = specs[p]!;
    const collector = new EndpointCollector();
    if (slices !== undefined) collector.fromSlices(slices, ps.name, ps.protocol);
    else if (legacy !== undefined) collector.fromEndpoints(legacy, ps.name, ps.protocol);
    ports[p] = Object.freeze({
      key: portKey(namespace, name, ps.port, ps.protocol),
      namespace,
      name,
      portName: ps.name,
      port: ps.port,
      protocol: ps.protocol,
      clusterIPs,
      nodePort: ps.nodePort,
      externalIPs,
      policy,
      affinity,
      endpoints: collector.result(),
    });
  }
  return { record, ports, warnings: warnings ?? NO_WARNINGS };
}

const NO_RECORD_PORTS: ServiceRecord["ports"] = Object.freeze([]);

/** Single-port lists by port name, then port * 2 + (UDP ? 1 : 0). */
export type PortListCache = Map<string, Map<number, ServiceRecord["ports"]>>;

/**
 * A record's port list. Single-port lists (most services: one "http" port 80/TCP) are shared
 * between services: two map lookups on the spec's own strings are cheaper than building and
 * freezing a new array in JSC, and 10k services then hold a handful of lists, not 10k.
 */
function recordPorts(specs: readonly PortSpec[], shared: PortListCache): ServiceRecord["ports"] {
  if (specs.length === 0) return NO_RECORD_PORTS;
  if (specs.length === 1) {
    const p = specs[0]!;
    const code = p.port * 2 + (p.protocol === "UDP" ? 1 : 0);
    let byPort = shared.get(p.name);
    if (byPort === undefined) shared.set(p.name, (byPort = new Map()));
    let list = byPort.get(code);
    if (list === undefined) {
      list = Object.freeze([Object.freeze({ name: p.name, port: p.port, protocol: p.protocol })]);
      byPort.set(code, list);
    }
    return list;
  }
  const out = new Array<ServiceRecord["ports"][number]>(specs.length);
  for (let i = 0; i < specs.length; i++) {
    const p = specs[i]!;
    out[i] = Object.freeze({ name: p.name, port: p.port, protocol: p.protocol });
  }
  return Object.freeze(out);
}

/**
 * DNS endpoints of a headless service: the union over its ports (each endpoint with its target
 * port), or every endpoint with port 0 when the service declares no ports.
 */
function headlessEndpoints(
  specs: readonly PortSpec[],
  slices: readonly KubeObject[] | undefined,
  legacy: KubeObject | undefined,
): readonly Endpoint[] {
  if (slices === undefined && legacy === undefined) return NO_ENDPOINTS;
  const collect = (name: string | null, protocol: Protocol): readonly Endpoint[] => {
    const c = new EndpointCollector();
    if (slices !== undefined) c.fromSlices(slices, name, protocol);
    else c.fromEndpoints(legacy!, name, protocol);
    return c.result();
  };
  if (specs.length === 0) return collect(null, "TCP");
  const all: Endpoint[] = [];
  for (const ps of specs) for (const e of collect(ps.name, ps.protocol)) all.push(e);
  return all.length === 0 ? NO_ENDPOINTS : Object.freeze(sortUnique(all));
}
