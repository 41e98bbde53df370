// Fuzz of the manifest YAML path (src/control/manifest/parse.ts and everything that reads what
// it returns): 20,000 mutated manifests through parseManifest, compile() and compileGateway();
// YAML alias bombs and recursive aliases; and the folder source keeping the last good content.
// A malformed file is refused with its file and line and counted among the source's errors;
// nothing throws, nothing hangs. Deterministic (seeded xorshift).

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock } from "../../src/control/clock.ts";
import { compile } from "../../src/control/compile/index.ts";
import { compileGateway } from "../../src/control/gateway/index.ts";
import { createManifestSource, parseManifest, type ManifestSource } from "../../src/control/manifest/index.ts";
import { expansionBudget } from "../../src/control/manifest/parse.ts";
import { KINDS, type Kind, type KubeObject } from "../../src/control/objects.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { rng } from "../support/rng.ts";

/** Every kind the agent and the gateway read, with most of the fields they look at. */
const RICH = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default, labels: { app: web } }
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  externalIPs: [192.168.1.5]
  sessionAffinity: ClientIP
  sessionAffinityConfig: { clientIP: { timeoutSeconds: 100 } }
  ports:
    - { name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080 }
    - { name: dns, port: 53, protocol: UDP, targetPort: dns }
---
apiVersion: v1
kind: Service
metadata: { name: head, namespace: default }
spec: { clusterIP: None, ports: [{ name: x, port: 1 }] }
---
apiVersion: v1
kind: Service
metadata: { name: ext, namespace: default }
spec: { type: ExternalName, externalName: example.com }
---
apiVersion: v1
kind: Endpoints
metadata: { name: web, namespace: default }
subsets:
  - addresses: [{ ip: 10.244.1.5, nodeName: n1, hostname: a }]
    notReadyAddresses: [{ ip: 10.244.1.6 }]
    ports: [{ name: http, port: 8080, protocol: TCP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }, { name: dns, port: 5353, protocol: UDP }]
endpoints:
  - { addresses: ["10.244.1.5"], conditions: { ready: true, serving: true, terminating: false }, nodeName: n1, zone: z1, hostname: h1 }
  - { addresses: ["10.244.2.5"], conditions: { ready: false }, nodeName: n2 }
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: web, namespace: default }
spec:
  host: web
  trafficPolicy:
    loadBalancer:
      consistentHash: { httpHeaderName: x-user }
---
apiVersion: v1
kind: Node
metadata: { name: n1, labels: { a: b }, annotations: { edgemesh.kubeedge.io/peer-id: 12D3KooW } }
spec: { podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24] }
status: { addresses: [{ type: InternalIP, address: 192.168.1.11 }] }
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { kubeedge: edgemesh-gateway }
  servers:
    - port: { number: 23333, name: http-0, protocol: HTTP }
      hosts: ["*"]
    - port: { number: 443, name: https, protocol: HTTPS }
      hosts: ["a.example.com", "*.b.example.com"]
      tls: { mode: SIMPLE, credentialName: cert, minProtocolVersion: TLSV1_2 }
    - port: { number: 9000, name: tcp, protocol: TCP }
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: ["*", "a.example.com"]
  gateways: [gw, default/gw]
  http:
    - match:
        - uri: { prefix: /api }
          method: { exact: GET }
          headers: { x-a: { regex: "^a.*" } }
          queryParams: { q: { exact: "1" } }
      rewrite: { uri: /v1 }
      timeout: 5s
      retries: { attempts: 2, perTryTimeout: 1s, retryOn: connect-failure }
      headers: { request: { set: { x-b: c }, remove: [x-d] } }
      route:
        - destination: { host: web, port: { number: 80 } }
          weight: 80
        - destination: { host: web.default.svc.cluster.local, port: { number: 80 } }
          weight: 20
  tcp:
    - match: [{ port: 9000 }]
      route: [{ destination: { host: web, port: { number: 80 } } }]
`;

const VALUES = ["null", "~", "[]", "{}", "{a: 1}", "[1, 2]", "[{}]", "[[[[]]]]", "-1", "0", "65536", "1.5", "99999999999999999999", "1e400", ".nan", "true", '""', '"*"', "!!binary AAAA", "2001-12-14t21:59:43.10-05:00", "0x1F", "'\\u0000'", "{port: {number: x}}", "&a x", "*a", "|\n  block"];

function mutate(seed: string, r: (n: number) => number): string {
  const ls = seed.split("\n");
  for (let m = 1 + r(4); m > 0; m--) {
    const at = r(ls.length);
    const line = ls[at]!;
    const colon = line.indexOf(":");
    switch (r(6)) {
      case 0: if (colon > 0) ls[at] = line.slice(0, colon + 1) + " " + VALUES[r(VALUES.length)]; break;
      case 1: ls.splice(at, 1); break;
      case 2: ls.splice(at, 0, ls[r(ls.length)]!); break;
      case 3: ls[at] = line.slice(0, r(line.length + 1)); break;
      case 4: {
        // Replace one flow-mapping value: keeps the YAML valid more often than a line edit.
        const pairs = [...line.matchAll(/(\w+): ([^,{}\[\]]+)/g)];
        const p = pairs[r(pairs.length + 1)];
        if (p) ls[at] = line.replace(p[0], `${p[1]}: ${VALUES[r(VALUES.length)]}`);
        break;
      }
      default: ls[at] = " ".repeat(r(6)) + line.trimStart();
    }
  }
  return ls.join("\n");
}

function compileAll(objects: readonly { kind: Kind; object: KubeObject }[]): void {
  const view = Object.fromEntries(KINDS.map((k) => [k, [] as KubeObject[]])) as Record<Kind, KubeObject[]>;
  for (const o of objects) view[o.kind].push(o.object);
  const store = createObjectStore();
  store.replace(view);
  compile(store.snapshot(), { serviceFilterMode: "FilterIfLabelExists" }, 1, 0);
  compileGateway(store.snapshot(), ["10.0.0.1"], { clusterDomain: "cluster.local", warn: () => {} }, 1, 0);
}

/** A YAML alias bomb: `levels` levels of ten aliases each, 10^levels values as a tree. */
function bomb(levels: number, indent = ""): string {
  let out = `${indent}l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n`;
  for (let i = 1; i <= levels; i++) out += `${indent}l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(", ")}]\n`;
  return out;
}

describe("manifest YAML fuzz", () => {
  test("20,000 mutated manifests: parse never throws, errors name file and line, whatever parses compiles for the agent and the gateway", async () => {
    const dir = join(import.meta.dir, "../../examples/manifests");
    const seeds = [RICH, ...(await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f), "utf8"))))];
    const r = rng(0xa11a5);
    let parsed = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = mutate(seeds[r(seeds.length)]!, r);
      const res = parseManifest("fuzz.yaml", text);
      if (!res.ok) {
        refused++;
        if (!res.error.message.startsWith("fuzz.yaml") || res.error.line < 0) throw new Error(`bad error ${JSON.stringify(res.error)}`);
        continue;
      }
      parsed++;
      try {
        compileAll(res.objects);
      } catch (err) {
        throw new Error(`compile threw ${(err as Error).message} for:\n${text}`);
      }
    }
    console.log(`manifest fuzz: ${parsed} parsed and compiled, ${refused} refused with file:line`);
    expect(parsed).toBeGreaterThan(2000);
    expect(refused).toBeGreaterThan(2000);
  }, 120_000);

  test("alias bombs are refused at parse, with the line, before anything walks them", () => {
    const cases = {
      "a VirtualService destination host": `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: vs, namespace: default }
x:
${bomb(8, "  ")}spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{ route: [{ destination: { host: *l8, port: { number: 80 } } }] }]
`,
      "a Service's ports": `kind: Service
metadata: { name: web }
x:
${bomb(9, "  ")}spec: { clusterIP: 10.96.0.10, ports: *l9 }
`,
      "a Node's annotations (what a peer's publication file may hold)": `apiVersion: v1
kind: Node
x:
${bomb(8, "  ")}metadata:
  name: n1
  annotations: { edgemesh.kubeedge.io/peer-id: *l8 }
`,
    };
    for (const [where, text] of Object.entries(cases)) {
      const t0 = performance.now();
      const res = parseManifest("bomb.yaml", text);
      const ms = performance.now() - t0;
      if (res.ok) throw new Error(`a bomb in ${where} was accepted`);
      expect(res.error.message).toMatch(/^bomb\.yaml:1: aliases expand this document to more than \d+ values/);
      console.log(`manifest fuzz: bomb in ${where}: refused in ${ms.toFixed(1)} ms`);
    }
  });

  test("a recursive alias is refused; aliases as people use them (shared port lists, labels) still load", () => {
    const loop = parseManifest("loop.yaml", "kind: Service\nmetadata: &m { name: web, self: *m }\nspec: {}\n");
    expect(loop.ok).toBe(false);
    if (!loop.ok) expect(loop.error.message).toMatch(/^loop\.yaml:1: an alias refers to a node that contains it/);

    const honest = parseManifest("ok.yaml", `x-ports: &ports
  - { name: http, port: 80, targetPort: 8080 }
x-labels: &labels { team: a }
kind: List
items:
${Array.from({ length: 200 }, (_, i) => `  - { kind: Service, metadata: { name: s${i}, namespace: default, labels: *labels }, spec: { clusterIP: 10.96.1.${i}, ports: *ports } }`).join("\n")}
`);
    expect(honest.ok).toBe(true);
    if (honest.ok) {
      expect(honest.objects).toHaveLength(200);
      expect(honest.objects[7]!.object.metadata).toMatchObject({ name: "s7", namespace: "default", labels: { team: "a" } });
    }
    // The budget grows with the file: an honest file cannot reach it.
    expect(expansionBudget(RICH.length)).toBeGreaterThan(RICH.length);
  });

  describe("in the folder source", () => {
    let dir: string;
    let source: ManifestSource | undefined;
    afterEach(async () => {
      source?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    test("a bomb written over a good file is reported with file and line; the file's last good content stays, other files apply", async () => {
      dir = await mkdtemp(join(tmpdir(), "edgemesh-manifest-fuzz-"));
      const store = createObjectStore();
      const log = createMemoryLogger();
      source = createManifestSource({ dir, store, log, clock: createManualClock(), rescanIntervalMs: 0 });
      await writeFile(join(dir, "a.yaml"), "kind: Service\nmetadata: { name: a }\nspec: { clusterIP: 10.96.0.1, ports: [{ port: 80 }] }\n");
      await writeFile(join(dir, "b.yaml"), "kind: Service\nmetadata: { name: b }\nspec: { clusterIP: 10.96.0.2, ports: [{ port: 80 }] }\n");
      await source.start();
      expect([...store.snapshot().Service.keys()].sort()).toEqual(["default/a", "default/b"]);
      await writeFile(join(dir, "b.yaml"), `kind: Service\nmetadata: { name: b2 }\nx:\n${bomb(9, "  ")}spec: { ports: *l9 }\n`);
      await writeFile(join(dir, "c.yaml"), "kind: Service\nmetadata: { name: c }\nspec: { clusterIP: 10.96.0.3, ports: [{ port: 80 }] }\n");
      await source.rescan();
      expect([...store.snapshot().Service.keys()].sort()).toEqual(["default/a", "default/b", "default/c"]);
      expect(source.errors.map((e) => e.message)).toEqual([expect.stringMatching(/b\.yaml:1: aliases expand this document/)]);
      expect(log.lines.some((l) => l.includes("b.yaml") && l.includes("line=1") && l.includes("aliases expand"))).toBe(true);
    });
  });
});
