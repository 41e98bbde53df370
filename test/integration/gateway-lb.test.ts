// DestinationRule load balancing for gateway destinations: a gateway route to a Service with
// three endpoints picks among them by the Service's DestinationRule (the same balancer the
// agent's proxy uses, createBalancer from src/hotpath/lb): ROUND_ROBIN cycles, RANDOM spreads
// without a cycle, consistentHash on a header or on the client's source IP keeps each key on
// one endpoint while keys spread, and a DR edit applies to the next request.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { KubeObject } from "../../src/control/index.ts";
import { gatewayObject, rawRequests, service, somePort, startBackend, startGateway, virtualService, type Backend, type TestGateway } from "./gateway-support.ts";

const GW = somePort();
const SERVICES = ["rr", "rand", "hdr", "src", "plain"] as const;
let backends: Backend[];
let g: TestGateway;

/** A seeded [0, 1) source (mulberry32): RANDOM is checked for spread without flaking. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rule(name: string, loadBalancer: Record<string, unknown>): KubeObject {
  return { apiVersion: "networking.istio.io/v1beta1", kind: "DestinationRule", metadata: { name, namespace: "default" }, spec: { host: name, trafficPolicy: { loadBalancer } } };
}

const rules = (hdr: Record<string, unknown>) => [rule("rr", { simple: "ROUND_ROBIN" }), rule("rand", { simple: "RANDOM" }), rule("hdr", hdr), rule("src", { consistentHash: { useSourceIp: true } })];

beforeAll(async () => {
  backends = ["a", "b", "c"].map((n, i) => startBackend(n, `127.0.0.${i + 1}`));
  const objs = SERVICES.flatMap((s) => service(s, 80, backends.map((b) => ({ ip: b.ip, port: b.port }))));
  g = await startGateway(
    {
      Service: objs.filter((o) => o.kind === "Service"),
      EndpointSlice: objs.filter((o) => o.kind === "EndpointSlice"),
      DestinationRule: rules({ consistentHash: { httpHeaderName: "x-user" } }),
      Gateway: [gatewayObject("gw", [{ port: { number: GW, protocol: "HTTP" }, hosts: ["*"] }])],
      VirtualService: [virtualService("lb", { hosts: ["*"], gateways: ["gw"], http: SERVICES.map((s) => ({ name: s, match: [{ uri: { prefix: `/${s}` } }], route: [{ destination: { host: s } }] })) })],
    },
    { random: seeded(7) },
  );
});

afterAll(() => {
  g?.stop();
  for (const b of backends ?? []) b.stop();
});

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: lb.test\r\n${extra}\r\n`;

/** Backend names of `n` requests to `path`, on one keep-alive connection. */
async function names(path: string, n: number, extra = ""): Promise<string[]> {
  const { responses } = await rawRequests(g.port(GW), Array.from({ length: n }, () => get(path, extra)));
  expect(responses.length).toBe(n);
  return responses.map((r) => JSON.parse(r.body).name as string);
}

function counts(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** Whether `xs` is a strict rotation through its distinct values (what round robin gives). */
function isRotation(xs: string[]): boolean {
  const k = new Set(xs).size;
  return xs.every((x, i) => i < k || x === xs[i - k]);
}

/** One request per call from source address `ip` (curl binds it), answered by which backend. */
async function fromSource(ip: string, path: string): Promise<string> {
  // Not spawnSync: the gateway runs in this process and must keep serving meanwhile.
  const p = Bun.spawn(["curl", "-sS", "--max-time", "3", "--interface", ip, `http://127.0.0.1:${g.port(GW)}${path}`], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`curl from ${ip}: ${err}`);
  return JSON.parse(out).name;
}

describe("gateway destinations follow the Service's DestinationRule", () => {
  test("the compiled table carries each rule's policy for the gateway's destinations", () => {
    const kinds = Object.fromEntries(SERVICES.map((s) => [s, g.routes.current().byKey[`default/${s}:80/TCP`]?.policy.kind]));
    expect(kinds).toEqual({ rr: "ROUND_ROBIN", rand: "RANDOM", hdr: "CONSISTENT_HASH_HEADER", src: "CONSISTENT_HASH_SOURCE_IP", plain: "ROUND_ROBIN" });
  });

  test("ROUND_ROBIN: 30 requests cycle through the three endpoints, 10 each", async () => {
    const got = await names("/rr", 30);
    expect(counts(got)).toEqual({ a: 10, b: 10, c: 10 });
    expect(isRotation(got)).toBe(true);
  });

  test("RANDOM: 90 requests reach all three endpoints, each within a tolerance, and not as a rotation", async () => {
    const got = await names("/rand", 90);
    const c = counts(got);
    expect(Object.keys(c).sort()).toEqual(["a", "b", "c"]);
    for (const n of Object.values(c)) expect(n).toBeGreaterThan(15);
    expect(isRotation(got)).toBe(false);
  });

  test("consistentHash on a header: each user stays on one endpoint across connections; users spread", async () => {
    const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
    const home = new Map<string, Set<string>>();
    // Three rounds, each user on a fresh connection, the users' connections concurrent.
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(users.map((u) => names("/hdr", 1, `x-user: ${u}\r\n`)));
      users.forEach((u, i) => {
        if (!home.has(u)) home.set(u, new Set());
        home.get(u)!.add(got[i]![0]!);
      });
    }
    for (const [u, where] of home) expect({ u, where: [...where] }).toEqual({ u, where: [...where].slice(0, 1) });
    const spread = new Set([...home.values()].map((s) => [...s][0]));
    expect(spread.size).toBeGreaterThanOrEqual(2);
    // Different keys on one keep-alive connection are hashed per request, not per connection.
    const { responses } = await rawRequests(g.port(GW), users.map((u) => get("/hdr", `x-user: ${u}\r\n`)));
    expect(responses.map((r) => JSON.parse(r.body).name)).toEqual(users.map((u) => [...home.get(u)!][0]));
  });

  test("consistentHash useSourceIp: each client address stays on one endpoint; addresses spread", async () => {
    const sources = Array.from({ length: 16 }, (_, i) => `127.0.1.${i + 1}`);
    const where = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (const ip of sources) {
        const name = await fromSource(ip, "/src");
        if (!where.has(ip)) where.set(ip, new Set());
        where.get(ip)!.add(name);
      }
    }
    for (const [ip, s] of where) expect({ ip, n: s.size }).toEqual({ ip, n: 1 });
    expect(new Set([...where.values()].map((s) => [...s][0])).size).toBeGreaterThanOrEqual(2);
  });

  test("a DestinationRule edit applies to the next request: the same user is spread once the rule says ROUND_ROBIN", async () => {
    const sticky = await names("/hdr", 12, "x-user: user-0\r\n");
    expect(new Set(sticky).size).toBe(1);
    await g.apply({ DestinationRule: rules({ simple: "ROUND_ROBIN" }) });
    expect(g.routes.current().byKey["default/hdr:80/TCP"]?.policy.kind).toBe("ROUND_ROBIN");
    const spread = await names("/hdr", 12, "x-user: user-0\r\n");
    expect(counts(spread)).toEqual({ a: 4, b: 4, c: 4 });
  });
});
