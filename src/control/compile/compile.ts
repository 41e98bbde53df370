// compile(): the object store in, one deeply frozen RouteTable out. Pure: no I/O, no clock
// reads (time and version come in as arguments), warnings go to a callback. Called by the
// publisher after a burst of store changes, so it must be fast at 10k services / 100k
// endpoints: slices are indexed once per run, per-service values (policy, affinity, IP lists)
// are built once and shared by the service's ports, and every object is frozen as it is built,
// so the finished table is deeply frozen without a second walk over 100k endpoints.

import type { StoreSnapshot } from "../store.ts";
import type { KubeObject } from "../objects.ts";
import {
  portKey,
  type Endpoint,
  type LbPolicy,
  type Protocol,
  type RouteTable,
  type ServicePort,
  type ServiceRecord,
} from "../table.ts";
import { EndpointCollector, indexSlices, NO_ENDPOINTS, sortUnique } from "./endpoints.ts";
import { isProxied, type ServiceFilterMode } from "./filter.ts";
import { policyFor } from "./policy.ts";
import { affinityOf, clusterIPsOf, NO_STRINGS, type PortSpec, servicePorts, serviceType, stringList } from "./service.ts";

export { DEFAULT_AFFINITY_TIMEOUT_SECONDS } from "./service.ts";

export interface CompileOptions {
  serviceFilterMode: ServiceFilterMode;
  /** Problems in objects (unsupported protocol, bad DestinationRule, ...). Never thrown. */
  warn?: (msg: string) => void;
}

const noWarn = (_msg: string): void => {};
/** RFC 1123 label, as Kubernetes requires for namespaces (and, stricter, for Service names). */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

export function compile(snapshot: StoreSnapshot, options: CompileOptions, version: number, now: number): RouteTable {
  const warn = options.warn ?? noWarn;
  const slicesByService = indexSlices(snapshot.EndpointSlice);
  const services = sortedServices(snapshot.Service, warn);
  const ports: ServicePort[] = [];
  const records: ServiceRecord[] = [];
  const portLists = new Map<string, ServiceRecord["ports"]>();

  for (let i = 0; i < services.length; i++) {
    const svc = services[i]!;
    const namespace = svc.metadata.namespace || "default";
    const name = svc.metadata.name;
    const id = `${namespace}/${name}`;
    const spec = svc.spec;
    if (spec === null || typeof spec !== "object") {
      warn(`Service ${id}: spec is missing; ignored`);
      continue;
    }
    const type = serviceType(spec, id, warn);
    const specs = servicePorts(spec.ports, id, warn);
    const clusterIPs = type === "Headless" || type === "ExternalName" ? NO_STRINGS : clusterIPsOf(spec);
    const slices = slicesByService.get(id);
    const legacy = slices === undefined ? snapshot.Endpoints.get(id) : undefined;

    let recordEndpoints: readonly Endpoint[] = NO_ENDPOINTS;
    if (type === "Headless") recordEndpoints = headlessEndpoints(specs, slices, legacy);

    records.push(
      Object.freeze({
        namespace,
        name,
        type,
        clusterIPs,
        externalName: type === "ExternalName" && typeof spec.externalName === "string" ? spec.externalName : "",
        ports: recordPorts(specs, portLists),
        endpoints: recordEndpoints,
      }),
    );

    if (type === "Headless" || type === "ExternalName" || specs.length === 0) continue;
    if (!isProxied(svc, options.serviceFilterMode)) continue;

    const policy: LbPolicy = policyFor(snapshot.DestinationRule.get(id), warn);
    const affinity = affinityOf(spec, id, warn);
    const externalIPs = stringList(spec.externalIPs);
    for (let p = 0; p < specs.length; p++) {
      const ps = specs[p]!;
      const collector = new EndpointCollector();
      if (slices !== undefined) collector.fromSlices(slices, ps.name, ps.protocol);
      else if (legacy !== undefined) collector.fromEndpoints(legacy, ps.name, ps.protocol);
      ports.push(
        Object.freeze({
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
        }),
      );
    }
  }

  // `ports` is already in key order by construction (see sortedServices); a test checks it.
  // Records want (namespace, name) order, which differs where one name prefixes another
  // ("svc-1" / "svc-1-x"): one more sort, of flat strings, ~2 ms at 10k services.
  records.sort(compareRecords);
  const byKey = Object.create(null) as Record<string, ServicePort>;
  for (let i = 0; i < ports.length; i++) byKey[ports[i]!.key] = ports[i]!;
  // Every object and array was frozen as it was built, so the table is deeply frozen once the
  // three containers and the root are. deepFreeze() would reach the same state but re-walks
  // the graph, and Object.isFrozen on a frozen 10k-element array alone costs ~2 ms in JSC.
  Object.freeze(ports);
  Object.freeze(byKey);
  Object.freeze(records);
  return Object.freeze({ version, compiledAt: now, ports, byKey, services: records });
}

/**
 * Services ordered by the string "namespace/name". Sorting by "namespace/name:" makes the port
 * keys ("namespace/name:port/PROTO") come out sorted too: ':' and '/' never occur in names, so
 * two services' keys first differ where their "namespace/name:" prefixes do. One sort of 10k
 * precomputed strings instead of a second sort of all ports.
 */
function sortedServices(map: ReadonlyMap<string, KubeObject>, warn: (msg: string) => void): KubeObject[] {
  const keyed: { key: string; svc: KubeObject }[] = [];
  for (const svc of map.values()) {
    const name = svc.metadata?.name;
    const namespace = svc.metadata?.namespace || "default";
    // Kubernetes validates these as DNS labels; manifests are not validated by anyone else, and
    // the names end up in DNS answers and in the ordering argument above.
    if (typeof name !== "string" || !DNS_LABEL.test(name) || !DNS_LABEL.test(namespace)) {
      warn(`Service ${JSON.stringify(namespace)}/${JSON.stringify(name)}: name and namespace must be DNS labels; ignored`);
      continue;
    }
    keyed.push({ key: `${namespace}/${name}:`, svc });
  }
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const list: KubeObject[] = [];
  for (let i = 0; i < keyed.length; i++) {
    // Two store entries for one service (a source that sent it with and without namespace).
    if (i > 0 && keyed[i]!.key === keyed[i - 1]!.key) {
      warn(`Service ${keyed[i]!.key.slice(0, -1)} is defined twice; the first one is used`);
      continue;
    }
    list.push(keyed[i]!.svc);
  }
  return list;
}

function compareRecords(a: ServiceRecord, b: ServiceRecord): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

const NO_RECORD_PORTS: ServiceRecord["ports"] = Object.freeze([]);

/**
 * A record's port list, shared between services with identical lists (most services look
 * alike: one "http" port 80/TCP): a map lookup is cheaper than building and freezing a new
 * array in JSC, and 10k services then hold a handful of lists instead of 10k.
 */
function recordPorts(specs: readonly PortSpec[], shared: Map<string, ServiceRecord["ports"]>): ServiceRecord["ports"] {
  if (specs.length === 0) return NO_RECORD_PORTS;
  let key = "";
  for (let i = 0; i < specs.length; i++) key += `${specs[i]!.name}|${specs[i]!.port}|${specs[i]!.protocol};`;
  const known = shared.get(key);
  if (known !== undefined) return known;
  const out = new Array<ServiceRecord["ports"][number]>(specs.length);
  for (let i = 0; i < specs.length; i++) {
    const p = specs[i]!;
    out[i] = Object.freeze({ name: p.name, port: p.port, protocol: p.protocol });
  }
  const list = Object.freeze(out);
  shared.set(key, list);
  return list;
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
