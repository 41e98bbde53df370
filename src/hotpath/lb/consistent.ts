// Consistent hashing with bounded loads, the algorithm of github.com/buraksezer/consistent that
// EdgeMesh's CONSISTENT_HASH policy uses (pkg/loadbalancer/hashring.go), with xxhash64 as EdgeMesh
// configures it:
// - each member is placed `replicationFactor` times on a ring at xxhash64(member + i);
// - the key space is cut into `partitionCount` partitions; partition p belongs to the first ring
//   point at or after xxhash64(p as 8 little-endian bytes) whose member still has room, room being
//   ceil(floor(partitionCount / members) * load) partitions (the "bounded load");
// - a key goes to partition xxhash64(key) % partitionCount.
// Differences, on purpose: where the Go library panics ("not enough room to distribute partitions",
// e.g. more members than partitions or load 1.0), we raise the bound to ceil(partitions / members)
// so every partition gets an owner. Building happens once per table version and service port.

export interface RingConfig {
  readonly partitionCount: number;
  readonly replicationFactor: number;
  readonly load: number;
}

export interface Ring {
  /** Partition id -> member index. */
  readonly owners: Int32Array;
  /** Member index -> partitions owned. */
  readonly loads: Int32Array;
  readonly averageLoad: number;
  readonly memberCount: number;
  readonly partitionCount: number;
}

export function buildRing(members: readonly string[], config: RingConfig): Ring {
  const partitionCount = Math.max(1, Math.floor(config.partitionCount));
  const replication = Math.max(1, Math.floor(config.replicationFactor));
  const n = members.length;
  const owners = new Int32Array(partitionCount).fill(-1);
  const loads = new Int32Array(n);
  if (n === 0) return { owners, loads, averageLoad: 0, memberCount: 0, partitionCount };

  const points: { hash: bigint; member: number }[] = [];
  for (let m = 0; m < n; m++) {
    for (let i = 0; i < replication; i++) points.push({ hash: Bun.hash.xxHash64(`${members[m]}${i}`), member: m });
  }
  points.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));

  let averageLoad = Math.ceil(Math.floor(partitionCount / n) * config.load);
  if (averageLoad * n < partitionCount) averageLoad = Math.ceil(partitionCount / n);

  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  for (let part = 0; part < partitionCount; part++) {
    view.setBigUint64(0, BigInt(part), true);
    const key = Bun.hash.xxHash64(bytes);
    let idx = lowerBound(points, key);
    if (idx >= points.length) idx = 0;
    let owner = -1;
    for (let count = 0; count < points.length; count++) {
      const member = points[idx]!.member;
      if (loads[member]! + 1 <= averageLoad) {
        owner = member;
        break;
      }
      idx = idx + 1 === points.length ? 0 : idx + 1;
    }
    if (owner < 0) owner = leastLoaded(loads);
    owners[part] = owner;
    loads[owner]!++;
  }
  return { owners, loads, averageLoad, memberCount: n, partitionCount };
}

/** The partition a key falls in. */
export function partitionOf(ring: Ring, key: string): number {
  return Number(Bun.hash.xxHash64(key) % BigInt(ring.partitionCount));
}

/** The member index owning a key, or -1 for an empty ring. */
export function locate(ring: Ring, key: string): number {
  if (ring.memberCount === 0) return -1;
  return ring.owners[partitionOf(ring, key)]!;
}

function lowerBound(points: readonly { hash: bigint }[], key: bigint): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]!.hash < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function leastLoaded(loads: Int32Array): number {
  let best = 0;
  for (let i = 1; i < loads.length; i++) if (loads[i]! < loads[best]!) best = i;
  return best;
}
