// The load balancer: given a ServicePort from the current table, the client IP and (for header
// hashing) the header value, choose an endpoint index. Decision only, no I/O.
// Per-version state (ring, address index) is built lazily and cached by the frozen ServicePort
// object, so a pick never rebuilds a ring. State that must outlive a table version (round-robin
// cursors, affinity) is kept by ServicePort key and checked against the endpoint list.

import type { RouteTable, ServicePort } from "../../control/index.ts";
import { AffinityTable } from "./affinity.ts";
import { buildRing, partitionOf, type Ring, type RingConfig } from "./consistent.ts";
import { firstUntried, pickRandom, pickRoundRobin, type RoundRobinCursor } from "./policies.ts";

export interface BalancerOptions {
  consistentHash: RingConfig;
  /** [0, 1) source for RANDOM; Math.random by default. */
  random?: () => number;
  clock?: { now(): number };
}

export interface Balancer {
  /**
   * Index into `sp.endpoints`, or -1 when every endpoint is in `tried` (or there are none).
   * `hashKey` is the header value for CONSISTENT_HASH_HEADER and ignored otherwise.
   */
  pick(sp: ServicePort, clientIp: string, hashKey: string, tried: readonly number[]): number;
  /** Forget state of ports no longer in the table and expired affinity entries. */
  prune(table: RouteTable): void;
}

interface PortState {
  readonly addresses: readonly string[];
  readonly byAddress: Map<string, number>;
  readonly cursor: RoundRobinCursor;
  ring: Ring | null;
}

const NOTHING_TRIED: readonly number[] = [];

export function createBalancer(options: BalancerOptions): Balancer {
  const random = options.random ?? Math.random;
  const clock = options.clock ?? Date;
  const perVersion = new WeakMap<ServicePort, PortState>();
  const cursors = new Map<string, RoundRobinCursor>();
  const affinities = new Map<string, AffinityTable>();

  function state(sp: ServicePort): PortState {
    let s = perVersion.get(sp);
    if (s !== undefined) return s;
    const addresses = sp.endpoints.map((e) => `${e.ip}:${e.port}`);
    const byAddress = new Map<string, number>();
    addresses.forEach((a, i) => byAddress.set(a, i));
    const signature = addresses.join(",");
    let cursor = cursors.get(sp.key);
    if (cursor === undefined || cursor.signature !== signature) {
      cursor = { signature, next: 0 };
      cursors.set(sp.key, cursor);
    }
    s = { addresses, byAddress, cursor, ring: null };
    perVersion.set(sp, s);
    return s;
  }

  function byPolicy(sp: ServicePort, s: PortState, clientIp: string, hashKey: string, tried: readonly number[]): number {
    const n = sp.endpoints.length;
    switch (sp.policy.kind) {
      case "RANDOM":
        return pickRandom(n, tried, random);
      case "CONSISTENT_HASH_SOURCE_IP":
        return pickHashed(sp, s, clientIp, tried);
      case "CONSISTENT_HASH_HEADER":
        return pickHashed(sp, s, hashKey, tried);
      default:
        return pickRoundRobin(n, tried, s.cursor);
    }
  }

  function pickHashed(sp: ServicePort, s: PortState, key: string, tried: readonly number[]): number {
    if (s.ring === null) s.ring = buildRing(s.addresses, options.consistentHash);
    const ring = s.ring;
    if (ring.memberCount === 0) return -1;
    // Failover walks the following partitions' owners: deterministic per key, and spread by load.
    const start = partitionOf(ring, key);
    for (let k = 0; k < ring.partitionCount; k++) {
      const owner = ring.owners[(start + k) % ring.partitionCount]!;
      if (!tried.includes(owner)) return owner;
    }
    return firstUntried(ring.memberCount, tried);
  }

  return {
    pick(sp, clientIp, hashKey, tried = NOTHING_TRIED) {
      if (sp.endpoints.length === 0) return -1;
      const s = state(sp);
      if (!sp.affinity.clientIP) return byPolicy(sp, s, clientIp, hashKey, tried);
      let table = affinities.get(sp.key);
      if (table === undefined) {
        table = new AffinityTable();
        affinities.set(sp.key, table);
      }
      const now = clock.now();
      const timeoutMs = sp.affinity.timeoutSeconds * 1000;
      const sticky = table.lookup(clientIp, now, timeoutMs);
      if (sticky !== "") {
        const idx = s.byAddress.get(sticky);
        if (idx !== undefined && !tried.includes(idx)) return idx;
      }
      const idx = byPolicy(sp, s, clientIp, hashKey, tried);
      if (idx >= 0) table.record(clientIp, s.addresses[idx]!, now);
      return idx;
    },

    prune(table) {
      for (const key of cursors.keys()) if (!(key in table.byKey)) cursors.delete(key);
      const now = clock.now();
      for (const [key, aff] of affinities) {
        const sp = table.byKey[key];
        if (sp === undefined || !sp.affinity.clientIP) affinities.delete(key);
        else aff.sweep(now, sp.affinity.timeoutSeconds * 1000);
      }
    },
  };
}
