// compile(): the object store in, one deeply frozen RouteTable out. No I/O, no clock reads
// (time and version come in as arguments), warnings go to a callback. It must be fast at 10k
// services / 100k endpoints: slices are indexed once per run, per-service values (policy,
// affinity, IP lists) are built once and shared by the service's ports, and every object is
// frozen as it is built, so the table is deeply frozen without a second walk over 100k
// endpoints. compile() is the cold path; createCompiler() (used by the publisher) also reuses
// whatever did not change since its previous compile.
//
// Contract with sources: an object handed to the store is never mutated afterwards (a change
// is a new object). Reuse is keyed on object identity and relies on it.

import type { StoreSnapshot } from "../store.ts";
import type { KubeObject } from "../objects.ts";
import type { CniTable, RouteTable, ServicePort, ServiceRecord } from "../table.ts";
import { compileCni, type CniCompileOptions } from "./cni.ts";
import { indexByName, indexSlices, lookup, type NameIndex } from "./lookup.ts";
import type { ServiceFilterMode } from "./filter.ts";
import { compileService, type PortListCache, type ServiceInputs, type ServiceOutput } from "./output.ts";

export { DEFAULT_AFFINITY_TIMEOUT_SECONDS } from "./service.ts";

export interface CompileOptions {
  serviceFilterMode: ServiceFilterMode;
  /** Problems in objects (unsupported protocol, bad DestinationRule, ...). Never thrown. */
  warn?: (msg: string) => void;
  /** Edge CNI inputs; when set, every table carries `cni` (compiled from the Node objects). */
  cni?: CniCompileOptions;
}

const noWarn = (_msg: string): void => {};
/** RFC 1123 label, as Kubernetes requires for namespaces (and, stricter, for Service names). */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * A compiler that remembers each service's output and reuses it while the service's inputs
 * (Service, its slices or Endpoints, its DestinationRule) are the very same objects as in the
 * previous compile. Sources replace an object on every change (store snapshots never mutate
 * objects), so identity is a safe and O(1) "unchanged" test; after one endpoint change a
 * 10k-service recompile redoes one service. Unchanged services keep their frozen ServicePort
 * and ServiceRecord objects across versions, which consumers may use to diff cheaply.
 */
export interface Compiler {
  compile(snapshot: StoreSnapshot, version: number, now: number): RouteTable;
}

interface CacheEntry {
  readonly input: ServiceInputs;
  readonly output: ServiceOutput;
}

/** What the previous compile saw and built, for reuse when whole kinds are unchanged. */
interface Previous {
  readonly snapshot: StoreSnapshot;
  readonly services: KubeObject[];
  readonly serviceWarnings: readonly string[];
  readonly slicesByService: NameIndex<KubeObject[]>;
  readonly endpointsByName: NameIndex<KubeObject>;
  readonly rulesByName: NameIndex<KubeObject>;
  /** sorted records[j] = records in service order[recordOrder[j]]; valid while `services` is. */
  readonly recordOrder: readonly number[];
  readonly warnings: readonly string[];
  readonly table: RouteTable;
}

export function createCompiler(options: CompileOptions): Compiler {
  const mode = options.serviceFilterMode;
  const warnOut = options.warn ?? noWarn;
  let cache = new Map<KubeObject, CacheEntry>();
  // Port lists are shared across compiles too; bounded by the distinct port names in use.
  let portLists: PortListCache = new Map();
  let previous: Previous | undefined;
  // The CNI part depends on the Node objects only: recompiled when that map changes.
  let cniMemo: { nodes: ReadonlyMap<string, KubeObject>; table: CniTable; warnings: readonly string[] } | undefined;
  const compileCniPart = (snapshot: StoreSnapshot): CniTable | undefined => {
    const o = options.cni;
    if (o === undefined) return undefined;
    if (cniMemo === undefined || cniMemo.nodes !== snapshot.Node) {
      const warnings: string[] = [];
      cniMemo = { nodes: snapshot.Node, table: compileCni(snapshot.Node, o, (m) => warnings.push(m)), warnings };
    }
    for (const w of cniMemo.warnings) warnOut(w);
    return cniMemo.table;
  };

  return {
    compile(snapshot, version, now) {
      const cni = compileCniPart(snapshot);
      // The store copies a kind's map only when that kind changes, so map identity tells which
      // kinds are untouched since the previous compile.
      const prev = previous;
      if (
        prev !== undefined &&
        prev.snapshot.Service === snapshot.Service &&
        prev.snapshot.EndpointSlice === snapshot.EndpointSlice &&
        prev.snapshot.Endpoints === snapshot.Endpoints &&
        prev.snapshot.DestinationRule === snapshot.DestinationRule
      ) {
        // Only kinds the service part does not read changed (Node, Secret, ...): same services,
        // new version (and the CNI part, recompiled above if the Nodes changed).
        for (const w of prev.warnings) warnOut(w);
        const t = prev.table;
        const table: RouteTable = Object.freeze({ version, compiledAt: now, ports: t.ports, byKey: t.byKey, services: t.services, ...(cni ? { cni } : {}) });
        previous = { ...prev, snapshot, table };
        return table;
      }
      const warnings: string[] = [];
      const warn = (msg: string): void => {
        warnings.push(msg);
        warnOut(msg);
      };
      let services: KubeObject[];
      let serviceWarnings: readonly string[];
      const sameServices = prev !== undefined && prev.snapshot.Service === snapshot.Service;
      if (sameServices) {
        services = prev!.services;
        serviceWarnings = prev!.serviceWarnings;
        for (const w of serviceWarnings) warn(w);
      } else {
        const collected: string[] = [];
        services = sortedServices(snapshot.Service, (msg) => collected.push(msg));
        serviceWarnings = collected;
        for (const w of collected) warn(w);
      }
      // Each index is rebuilt only when its kind changed.
      const slicesByService =
        prev !== undefined && prev.snapshot.EndpointSlice === snapshot.EndpointSlice
          ? prev.slicesByService
          : indexSlices(snapshot.EndpointSlice);
      const endpointsByName =
        prev !== undefined && prev.snapshot.Endpoints === snapshot.Endpoints ? prev.endpointsByName : indexByName(snapshot.Endpoints);
      const rulesByName =
        prev !== undefined && prev.snapshot.DestinationRule === snapshot.DestinationRule
          ? prev.rulesByName
          : indexByName(snapshot.DestinationRule);
      const next = new Map<KubeObject, CacheEntry>();
      const ports: ServicePort[] = [];
      const records: ServiceRecord[] = [];
      if (portLists.size > services.length + 64) portLists = new Map();

      for (let i = 0; i < services.length; i++) {
        const svc = services[i]!;
        const namespace = svc.metadata.namespace || "default";
        const name = svc.metadata.name;
        const slices = lookup(slicesByService, namespace, name);
        const legacy = slices === undefined ? lookup(endpointsByName, namespace, name) : undefined;
        const rule = lookup(rulesByName, namespace, name);
        const prev = cache.get(svc);
        let entry: CacheEntry;
        if (prev !== undefined && sameInputs(prev.input, slices, legacy, rule)) {
          entry = prev;
        } else {
          const input: ServiceInputs = { svc, slices, legacy, rule };
          entry = { input, output: compileService(input, namespace, name, mode, portLists) };
        }
        next.set(svc, entry);
        const out = entry.output;
        for (let w = 0; w < out.warnings.length; w++) warn(out.warnings[w]!);
        if (out.record !== null) records.push(out.record);
        for (let p = 0; p < out.ports.length; p++) ports.push(out.ports[p]!);
      }
      cache = next;

      // `ports` is already in key order by construction (see sortedServices); a test checks it.
      // Records want (namespace, name) order, which differs where one name prefixes another
      // ("svc-1" / "svc-1-x"): sorted once per Service-map change, the order is then reused
      // (a record exists for a service iff its spec is usable: a property of the same objects).
      let recordOrder: readonly number[];
      if (sameServices && prev!.recordOrder.length === records.length) recordOrder = prev!.recordOrder;
      else recordOrder = sortOrder(records);
      const sortedRecords = new Array<ServiceRecord>(records.length);
      for (let j = 0; j < recordOrder.length; j++) sortedRecords[j] = records[recordOrder[j]!]!;
      const byKey = Object.create(null) as Record<string, ServicePort>;
      for (let i = 0; i < ports.length; i++) byKey[ports[i]!.key] = ports[i]!;
      // Every object and array was frozen as it was built, so the table is deeply frozen once
      // the three containers and the root are. deepFreeze() would reach the same state but
      // re-walks the graph, and Object.isFrozen on a frozen 10k-element array alone costs ~2 ms.
      Object.freeze(ports);
      Object.freeze(byKey);
      Object.freeze(sortedRecords);
      const table: RouteTable = Object.freeze({ version, compiledAt: now, ports, byKey, services: sortedRecords, ...(cni ? { cni } : {}) });
      previous = { snapshot, services, serviceWarnings, slicesByService, endpointsByName, rulesByName, recordOrder, warnings, table };
      return table;
    },
  };
}

/** Pure, cold compile: the whole store, nothing reused. */
export function compile(snapshot: StoreSnapshot, options: CompileOptions, version: number, now: number): RouteTable {
  return createCompiler(options).compile(snapshot, version, now);
}

function sameInputs(
  prev: ServiceInputs,
  slices: readonly KubeObject[] | undefined,
  legacy: KubeObject | undefined,
  rule: KubeObject | undefined,
): boolean {
  if (prev.legacy !== legacy || prev.rule !== rule) return false;
  const before = prev.slices;
  if (before === slices) return true;
  if (before === undefined || slices === undefined || before.length !== slices.length) return false;
  for (let i = 0; i < slices.length; i++) if (before[i] !== slices[i]) return false;
  return true;
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

/** Indices of `records` in (namespace, name) order. */
function sortOrder(records: readonly ServiceRecord[]): number[] {
  const order = new Array<number>(records.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => compareRecords(records[a]!, records[b]!));
}

function compareRecords(a: ServiceRecord, b: ServiceRecord): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
