import { describe, expect, test } from "bun:test";
import { deepFreeze, portKey, type LbPolicy, type RouteTable, type ServicePort } from "../../src/control/index.ts";
import { buildRing, createBalancer, headEnd, headerValue, locate } from "../../src/hotpath/lb/index.ts";

const CH = { partitionCount: 100, replicationFactor: 10, load: 1.25 };

function port(policy: LbPolicy, count: number, opts: { affinity?: number; name?: string; base?: number } = {}): ServicePort {
  const name = opts.name ?? "web";
  return deepFreeze({
    key: portKey("default", name, 80, "TCP"),
    namespace: "default",
    name,
    portName: "",
    port: 80,
    protocol: "TCP",
    clusterIPs: [],
    nodePort: 0,
    externalIPs: [],
    policy,
    affinity: { clientIP: opts.affinity !== undefined, timeoutSeconds: opts.affinity ?? 10800 },
    endpoints: Array.from({ length: count }, (_, i) => ({
      ip: `10.0.0.${(opts.base ?? 1) + i}`,
      port: 8080,
      node: "n1",
      ready: true,
      hostname: "",
      zone: "",
    })),
  } satisfies ServicePort);
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function manualClock(start = 1_000_000) {
  return { t: start, now() { return this.t; } };
}

describe("round robin", () => {
  test("spreads picks exactly evenly over the endpoints", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "ROUND_ROBIN" }, 4);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 400; i++) counts[lb.pick(sp, "1.2.3.4", "", [])]!++;
    expect(counts).toEqual([100, 100, 100, 100]);
  });

  test("a new table version with the same endpoints keeps the cursor", () => {
    const lb = createBalancer({ consistentHash: CH });
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 3), "c", "", [])).toBe(0);
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 3), "c", "", [])).toBe(1);
    // A changed endpoint list resets the cursor.
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 2), "c", "", [])).toBe(0);
  });

  test("skips tried endpoints and reports exhaustion", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "ROUND_ROBIN" }, 3);
    expect(lb.pick(sp, "c", "", [0])).toBe(1);
    expect(lb.pick(sp, "c", "", [0, 2])).toBe(1);
    expect(lb.pick(sp, "c", "", [0, 1, 2])).toBe(-1);
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 0), "c", "", [])).toBe(-1);
  });
});

describe("random", () => {
  test("is uniform within tolerance", () => {
    const lb = createBalancer({ consistentHash: CH, random: seeded(42) });
    const sp = port({ kind: "RANDOM" }, 5);
    const counts = [0, 0, 0, 0, 0];
    const n = 50_000;
    for (let i = 0; i < n; i++) counts[lb.pick(sp, "c", "", [])]!++;
    for (const c of counts) expect(Math.abs(c - n / 5)).toBeLessThan(n / 5 * 0.05);
  });

  test("never picks a tried endpoint", () => {
    const lb = createBalancer({ consistentHash: CH, random: seeded(7) });
    const sp = port({ kind: "RANDOM" }, 4);
    for (let i = 0; i < 1000; i++) expect([1, 3]).toContain(lb.pick(sp, "c", "", [0, 2]));
    expect(lb.pick(sp, "c", "", [0, 1, 2, 3])).toBe(-1);
  });
});

describe("consistent hash on source IP", () => {
  test("the same client IP always lands on the same endpoint, across table versions", () => {
    const lb = createBalancer({ consistentHash: CH });
    for (let c = 0; c < 200; c++) {
      const ip = `192.168.${c >> 8}.${c & 255}`;
      const first = lb.pick(port({ kind: "CONSISTENT_HASH_SOURCE_IP" }, 5), ip, "", []);
      for (let k = 0; k < 3; k++) expect(lb.pick(port({ kind: "CONSISTENT_HASH_SOURCE_IP" }, 5), ip, "", [])).toBe(first);
    }
  });

  test("no endpoint owns more partitions than the load bound", () => {
    for (const members of [1, 2, 3, 7, 10, 33, 99, 150]) {
      const names = Array.from({ length: members }, (_, i) => `10.0.${i >> 8}.${i & 255}:80`);
      const ring = buildRing(names, CH);
      const bound = members <= 100 ? Math.max(Math.ceil(Math.floor(100 / members) * 1.25), Math.ceil(100 / members)) : 1;
      let total = 0;
      for (const l of ring.loads) {
        expect(l).toBeLessThanOrEqual(bound);
        total += l;
      }
      expect(total).toBe(100);
      expect([...ring.owners].every((o) => o >= 0 && o < members)).toBe(true);
    }
  });

  test("keys spread over all endpoints within the bounded load", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "CONSISTENT_HASH_SOURCE_IP" }, 4);
    const counts = [0, 0, 0, 0];
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[lb.pick(sp, `172.16.${i >> 8}.${i & 255}`, "", [])]!++;
    // average load 25 partitions, bound ceil(25 * 1.25) = 32 of 100: no endpoint above ~32%.
    for (const c of counts) {
      expect(c).toBeGreaterThan(0);
      expect(c / n).toBeLessThan(0.36);
    }
  });

  test("removing one endpoint keeps most other clients where they were", () => {
    const names = Array.from({ length: 5 }, (_, i) => `10.0.0.${i + 1}:8080`);
    const before = buildRing(names, CH);
    const after = buildRing(names.slice(0, 4), CH);
    let kept = 0;
    let movable = 0;
    for (let i = 0; i < 5000; i++) {
      const key = `10.9.${i >> 8}.${i & 255}`;
      const a = locate(before, key);
      if (a === 4) continue;
      movable++;
      if (locate(after, key) === a) kept++;
    }
    expect(kept / movable).toBeGreaterThan(0.6);
  });

  test("fails over deterministically to another endpoint", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "CONSISTENT_HASH_SOURCE_IP" }, 3);
    const first = lb.pick(sp, "9.9.9.9", "", []);
    const second = lb.pick(sp, "9.9.9.9", "", [first]);
    expect(second).not.toBe(first);
    expect(lb.pick(sp, "9.9.9.9", "", [first])).toBe(second);
    expect(lb.pick(sp, "9.9.9.9", "", [0, 1, 2])).toBe(-1);
  });
});

describe("consistent hash on an HTTP header", () => {
  test("the same header value sticks, different values spread", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "CONSISTENT_HASH_HEADER", header: "x-user" }, 4);
    const seen = new Set<number>();
    for (let u = 0; u < 100; u++) {
      const first = lb.pick(sp, "1.1.1.1", `user-${u}`, []);
      seen.add(first);
      for (let k = 0; k < 5; k++) expect(lb.pick(sp, `2.2.2.${k}`, `user-${u}`, [])).toBe(first);
    }
    expect(seen.size).toBe(4);
  });

  test("finds the end of a request head and a header's value", () => {
    const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nX-User:  alice \r\nx-user: bob\r\n\r\nBODY");
    const end = headEnd(head, head.length);
    expect(end).toBe(head.length - 4);
    expect(headerValue(head, end, "x-user")).toBe("alice");
    expect(headerValue(head, end, "host")).toBe("a");
    expect(headerValue(head, end, "cookie")).toBe("");
    expect(headEnd(head, 20)).toBe(-1);
    const bare = new TextEncoder().encode("GET / HTTP/1.0\nX-User: z\n\n");
    expect(headEnd(bare, bare.length)).toBe(bare.length);
    expect(headerValue(bare, bare.length, "x-user")).toBe("z");
  });
});

describe("session affinity ClientIP", () => {
  test("a client sticks to its endpoint while it returns within the timeout", () => {
    const clock = manualClock();
    const lb = createBalancer({ consistentHash: CH, clock });
    const sp = port({ kind: "ROUND_ROBIN" }, 3, { affinity: 60 });
    const a = lb.pick(sp, "10.1.1.1", "", []);
    const b = lb.pick(sp, "10.1.1.2", "", []);
    expect(b).not.toBe(a);
    for (let i = 0; i < 10; i++) {
      clock.t += 59_000; // each visit renews the stickiness
      expect(lb.pick(sp, "10.1.1.1", "", [])).toBe(a);
    }
  });

  test("the stickiness expires after the timeout", () => {
    const clock = manualClock();
    const lb = createBalancer({ consistentHash: CH, clock });
    const sp = port({ kind: "ROUND_ROBIN" }, 2, { affinity: 10 });
    expect(lb.pick(sp, "10.1.1.1", "", [])).toBe(0);
    clock.t += 10_001;
    // Round robin moved on: an expired client is balanced anew.
    expect(lb.pick(sp, "10.1.1.1", "", [])).toBe(1);
    expect(lb.pick(sp, "10.1.1.1", "", [])).toBe(1);
  });

  test("a sticky endpoint that failed or left is replaced", () => {
    const clock = manualClock();
    const lb = createBalancer({ consistentHash: CH, clock });
    const sp = port({ kind: "ROUND_ROBIN" }, 3, { affinity: 100 });
    const a = lb.pick(sp, "10.1.1.1", "", []);
    const b = lb.pick(sp, "10.1.1.1", "", [a]);
    expect(b).not.toBe(a);
    expect(lb.pick(sp, "10.1.1.1", "", [])).toBe(b);
    const shrunk = port({ kind: "ROUND_ROBIN" }, 3, { affinity: 100, base: 50 });
    expect(lb.pick(shrunk, "10.1.1.1", "", [])).toBeGreaterThanOrEqual(0);
  });

  test("prune forgets the state of ports that left the table", () => {
    const lb = createBalancer({ consistentHash: CH });
    const sp = port({ kind: "ROUND_ROBIN" }, 3);
    expect(lb.pick(sp, "c", "", [])).toBe(0);
    expect(lb.pick(sp, "c", "", [])).toBe(1);
    const kept: RouteTable = deepFreeze({ version: 2, compiledAt: 0, ports: [sp], byKey: { [sp.key]: sp }, services: [] });
    lb.prune(kept);
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 3), "c", "", [])).toBe(2);
    const empty: RouteTable = deepFreeze({ version: 3, compiledAt: 0, ports: [], byKey: {}, services: [] });
    lb.prune(empty);
    expect(lb.pick(port({ kind: "ROUND_ROBIN" }, 3), "c", "", [])).toBe(0);
  });
});
