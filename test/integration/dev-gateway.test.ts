// Dev mode with Gateway/VirtualService manifests: the gateway serves them on 127.0.0.1, prints
// where, and follows manifest edits; the bundled example compiles without a warning.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { compileGateway, createObjectStore, parseManifest, type Kind, type KubeObject } from "../../src/control/index.ts";
import { spawnWatched, type Watched } from "../support/process.ts";

const ROOT = resolve(import.meta.dir, "../..");

function manifests(portA: number, portB: number, prefixToB: string): string {
  const svc = (name: string, port: number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: 10.96.8.${name === "a" ? 1 : 2}
  ports: [{ name: http, port: 80, protocol: TCP, targetPort: http }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, port: ${port}, protocol: TCP }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }]
---
`;
  return `${svc("a", portA)}${svc("b", portB)}apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
    - match: [{ uri: { prefix: ${prefixToB} } }]
      route: [{ destination: { host: b } }]
    - route: [{ destination: { host: a } }]
`;
}

describe("edgemesh dev with a Gateway", () => {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-dev-gw-"));
  const backends = ["a", "b"].map((name) => Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`${name} ${new URL(req.url).pathname}`) }));
  let dev: Watched;
  let gw = "";

  beforeAll(async () => {
    writeFileSync(join(dir, "all.yaml"), manifests(backends[0]!.port!, backends[1]!.port!, "/b"));
    dev = spawnWatched([process.execPath, join(ROOT, "src/main/index.ts"), "dev", "--manifests", dir, "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"]);
    gw = (await dev.waitFor(/port 80 HTTP -> http:\/\/(127\.0\.0\.1:\d+)/, 10_000))[1]!;
  });

  afterAll(async () => {
    await dev?.kill();
    for (const b of backends) b.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  test("prints the gateway port and its routes, and routes per request through it", async () => {
    expect(dev.output()).toMatch(/\*\s+uri prefix "\/b"\s+->\s+default\/b:80\s+\[default\/routes:http\[0\]\]/);
    expect(await (await fetch(`http://${gw}/x`)).text()).toBe("a /x");
    expect(await (await fetch(`http://${gw}/b/y`)).text()).toBe("b /b/y");
  });

  test("a VirtualService edit applies within a second, on the same listener", async () => {
    writeFileSync(join(dir, "all.yaml"), manifests(backends[0]!.port!, backends[1]!.port!, "/x"));
    const t0 = Date.now();
    let body = "";
    while (Date.now() - t0 < 3000) {
      body = await (await fetch(`http://${gw}/x`)).text();
      if (body === "b /x") break;
      await Bun.sleep(25);
    }
    expect(body).toBe("b /x");
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe("examples/manifests", () => {
  test("the bundled Gateway example compiles without a warning and binds every route", () => {
    const dir = join(ROOT, "examples/manifests");
    const store = createObjectStore();
    const byKind = new Map<Kind, KubeObject[]>();
    for (const f of readdirSync(dir).filter((n) => n.endsWith(".yaml"))) {
      const r = parseManifest(join(dir, f), readFileSync(join(dir, f), "utf8"));
      if (!r.ok) throw new Error(r.error.message);
      for (const o of r.objects) byKind.set(o.kind, [...(byKind.get(o.kind) ?? []), o.object]);
    }
    store.replace(Object.fromEntries(byKind));
    const warnings: string[] = [];
    const t = compileGateway(store.snapshot(), ["127.0.0.1"], { clusterDomain: "cluster.local", warn: (w) => warnings.push(w) }, 1, 0);
    expect(warnings).toEqual([]);
    expect(t.ports.map((p) => `${p.port}/${p.mode}`)).toEqual(["80/HTTP", "7000/TCP"]);
    expect(t.routeIds).toEqual(["default/edge-routes:canary", "default/edge-routes:default", "default/edge-routes:tcp[0]", "default/edge-routes:v2"]);
    expect(t.byPort["7000"]!.tcp!.destinations[0]!.key).toBe("demo/echo:7/TCP");
  });
});
