// The edge gateway end to end in the netns test bed. Node gw has two NICs: eth0 on the edge LAN
// (with n2) and eth1 on an "outside" LAN where a client sits that is not part of the cluster.
// `edgemesh gateway` runs on gw (next to gw's agent, as EdgeMesh deploys them) and listens only
// on eth1 (nic: eth1). The client reaches a service whose pod is on gw (dialed directly) and one
// whose pod is on n2 (through the tunnel, which the gateway joins as gw-gateway), by Host and
// path, over HTTPS with a required client certificate, and over WebSocket; a weighted split,
// an address added to eth1 while running, and a certificate rotation.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestNode } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { APP_PORTS, BUN, CLIENT, MAIN, createCluster, makeTestCA, serviceYaml, until, type Cluster } from "./harness.ts";

const OUTSIDE_GW = "192.168.50.1";
const OUTSIDE_GW_2 = "192.168.50.2";
const HTTP_PORT = 8080;
const HTTPS_PORT = 8443;
/** A server that serves only two named hosts: routing there is by Host first, then path. */
const HOSTS_PORT = 8081;

function openssl(dir: string, args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
}

/** A certificate signed by the test CA in `dir` (ca.crt/ca.key): server (SAN dns) or client. */
function issue(dir: string, name: string, kind: "server" | "client", dns?: string): { cert: string; key: string } {
  const ext = kind === "server" ? `subjectAltName=DNS:${dns}\nextendedKeyUsage=serverAuth\n` : "extendedKeyUsage=clientAuth\n";
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

function secretYaml(name: string, certFile: string, keyFile: string, caFile: string): string {
  const b64 = (f: string) => readFileSync(f).toString("base64");
  return `apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: { name: ${name}, namespace: default }
data:
  tls.crt: ${b64(certFile)}
  tls.key: ${b64(keyFile)}
  ca.crt: ${b64(caFile)}
`;
}

const GATEWAY_YAML = `apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: edge-gw, namespace: default }
spec:
  selector: { kubeedge: edgemesh-gateway }
  servers:
    - port: { number: ${HTTP_PORT}, name: http, protocol: HTTP }
      hosts: ["*"]
    - port: { number: ${HTTPS_PORT}, name: https, protocol: HTTPS }
      hosts: ["secure.example"]
      tls: { mode: SIMPLE, credentialName: secure-tls }
    - port: { number: ${HOSTS_PORT}, name: http-hosts, protocol: HTTP }
      hosts: ["local.example", "remote.example"]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [edge-gw]
  http:
    - name: local
      match: [{ uri: { prefix: /local } }]
      route: [{ destination: { host: local } }]
    - name: remote
      match: [{ uri: { prefix: /remote } }, { uri: { exact: /ws } }]
      route: [{ destination: { host: remote } }]
    - name: split
      match: [{ uri: { prefix: /split } }]
      route:
        - { destination: { host: local }, weight: 50 }
        - { destination: { host: remote }, weight: 50 }
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: secure, namespace: default }
spec:
  hosts: [secure.example]
  gateways: [edge-gw]
  http:
    - route: [{ destination: { host: remote } }]
---
# The same path on two hosts: the Host header alone decides between the pod on gw and the one on n2.
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: by-host-local, namespace: default }
spec:
  hosts: [local.example]
  gateways: [edge-gw]
  http:
    - name: app
      match: [{ uri: { prefix: /app } }]
      route: [{ destination: { host: local } }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: by-host-remote, namespace: default }
spec:
  hosts: [remote.example]
  gateways: [edge-gw]
  http:
    - name: app
      match: [{ uri: { prefix: /app } }]
      route: [{ destination: { host: remote } }]
`;

describe("e2e: edge gateway on two NICs", () => {
  let c: Cluster;
  let outside: TestNode;
  let gateway: Watched;
  let pki: { ca: string; cert: string; key: string };
  let client: { cert: string; key: string };
  let rotated: { cert: string; key: string };

  beforeAll(async () => {
    c = await createCluster({
      lans: [
        { name: "edge", cidr: "10.10.0.0/24" },
        { name: "outside", cidr: "192.168.50.0/24" },
      ],
      nodes: [
        { name: "gw", lan: "edge", ip: "10.10.0.11", podCidr: "10.244.1.0/24", extraNics: [{ lan: "outside", ip: OUTSIDE_GW }] },
        { name: "n2", lan: "edge", ip: "10.10.0.12", podCidr: "10.244.2.0/24" },
        { name: "client", lan: "outside", ip: "192.168.50.100", podCidr: "10.244.9.0/24" },
      ],
    });
    outside = c.node("client");
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-gateway-psk\n");
    pki = await makeTestCA(c.dir, ["secure.example"]);
    client = issue(c.dir, "outside-client", "client");
    rotated = issue(c.dir, "rotated", "server", "secure.example");
    await c.startApp(await c.node("gw").addPod("local-app", "10.244.1.10"), "local-app");
    await c.startApp(await c.node("n2").addPod("remote-app", "10.244.2.10"), "remote-app");
    c.writeManifest("local.yaml", serviceYaml({ name: "local", clusterIP: "10.96.0.11", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.1.10", node: "gw", name: "local-app" }] }));
    c.writeManifest("remote.yaml", serviceYaml({ name: "remote", clusterIP: "10.96.0.12", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.2.10", node: "n2", name: "remote-app" }] }));
    c.writeManifest("secret.yaml", secretYaml("secure-tls", pki.cert, pki.key, pki.ca));
    c.writeManifest("gateway.yaml", GATEWAY_YAML);
    await Promise.all([c.startAgent("n2", { tunnel: { psk: join(c.dir, "psk") } }), c.startAgent("gw", { tunnel: { psk: join(c.dir, "psk") } })]);
    // The gateway's config as EdgeMesh's ConfigMap writes it (no apiVersion/kind), plus the folder.
    const config = join(c.dir, "edgemesh-gateway.yaml");
    writeFileSync(
      config,
      `kubeAPIConfig:
  manifestDir: ${c.manifests}
commonConfig:
  stateDir: ${join(c.dir, "state-gateway")}
modules:
  edgeGateway:
    enable: true
    nic: eth1
  edgeTunnel:
    enable: true
    psk:
      enable: true
      path: ${join(c.dir, "psk")}
`,
    );
    gateway = c.node("gw").spawn([BUN, MAIN, "gateway", "--config", config], { env: { NODE_NAME: "gw", EDGEMESH_LOG_LEVEL: "info" } });
    await gateway.waitFor(/\brunning\b/, 20_000);
  });

  afterAll(async () => {
    await gateway?.kill("SIGTERM").catch(() => 0);
    await c?.destroy();
  });

  const curl = (args: string[]) => outside.exec(["curl", "-sS", "--max-time", "4", ...args]);

  test("the gateway joins the tunnel as gw-gateway beside gw's agent and listens only on eth1", async () => {
    expect(gateway.output()).toMatch(/tunnelIdentity=gw-gateway/);
    expect(gateway.output()).toMatch(/listenPort is taken/);
    expect(gateway.output()).toMatch(new RegExp(`gateway listening listener=${OUTSIDE_GW.replace(/\./g, "\\.")}:${HTTP_PORT}`));
    const fromEdge = await c.node("n2").exec(["curl", "-sS", "--max-time", "2", `http://10.10.0.11:${HTTP_PORT}/local`]);
    expect(fromEdge.code).not.toBe(0);
  });

  test("the outside client reaches a pod on the gateway node and one on another node through the tunnel, by path", async () => {
    expect((await curl([`http://${OUTSIDE_GW}:${HTTP_PORT}/local`])).stdout).toBe("local-app");
    const ok = await until(async () => (await curl([`http://${OUTSIDE_GW}:${HTTP_PORT}/remote`])).stdout === "remote-app", 15_000, 250);
    expect(ok).toBe(true);
    const unrouted = await curl(["-o", "/dev/null", "-w", "%{http_code}", `http://${OUTSIDE_GW}:${HTTP_PORT}/nothing-here`]);
    expect(unrouted.stdout).toBe("404");
  });

  test("by Host and path: the same path on local.example and remote.example lands on gw's pod and on n2's through the tunnel; another Host is 404", async () => {
    const at = (host: string, path: string, port = HOSTS_PORT) => curl(["--resolve", `${host}:${port}:${OUTSIDE_GW}`, "-w", " %{http_code}", `http://${host}:${port}${path}`]);
    expect((await at("local.example", "/app")).stdout).toBe("local-app 200");
    const remote = await until(async () => (await at("remote.example", "/app")).stdout === "remote-app 200", 15_000, 250);
    expect(remote).toBe(true);
    // Alternating on one port proves the decision is per Host, not per port or connection order.
    for (const [host, want] of [["remote.example", "remote-app"], ["local.example", "local-app"], ["remote.example", "remote-app"]] as const) {
      expect((await at(host, "/app")).stdout).toBe(`${want} 200`);
    }
    // The Host is not served on this port: 404, even on paths other hosts route.
    expect((await at("other.example", "/app")).stdout).toEndWith(" 404");
    expect((await at("other.example", "/local")).stdout).toEndWith(" 404");
    // A served Host with a path none of its routes match: 404 too.
    expect((await at("local.example", "/nothing-here")).stdout).toEndWith(" 404");
    // On the "*" port the named hosts get their own routes and the rest fall to "*".
    expect((await at("remote.example", "/app", HTTP_PORT)).stdout).toBe("remote-app 200");
    expect((await at("other.example", "/app", HTTP_PORT)).stdout).toEndWith(" 404");
    expect((await at("other.example", "/local", HTTP_PORT)).stdout).toBe("local-app 200");
  });

  test("HTTPS with the test CA: a client certificate is required; with one the request goes through", async () => {
    const base = ["--cacert", pki.ca, "--resolve", `secure.example:${HTTPS_PORT}:${OUTSIDE_GW}`, `https://secure.example:${HTTPS_PORT}/`];
    const withCert = await curl(["--cert", client.cert, "--key", client.key, ...base]);
    expect(withCert.stdout).toBe("remote-app");
    const without = await curl(base);
    expect(without.code).not.toBe(0);
    expect(without.stdout).not.toContain("remote-app");
  });

  test("a WebSocket echo through the gateway to the pod on n2", async () => {
    const script = `const ws = new WebSocket("ws://${OUTSIDE_GW}:${HTTP_PORT}/ws");
ws.onopen = () => ws.send("hello-through-the-gateway");
ws.onmessage = (e) => { console.log("echo:" + e.data); ws.close(); process.exit(0); };
setTimeout(() => { console.log("timeout"); process.exit(1); }, 4000);`;
    const r = await outside.exec([BUN, "-e", script], { timeoutMs: 6000 });
    expect(r.stdout.trim()).toBe("echo:hello-through-the-gateway");
  });

  test("a 50/50 weighted split between the two nodes' pods stays within a tolerance", async () => {
    const r = await outside.exec([BUN, CLIENT, "--host", OUTSIDE_GW, "--port", String(HTTP_PORT), "--path", "/split", "--count", "300", "--concurrency", "8"], { timeoutMs: 30_000 });
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { ok: number; byBody: Record<string, number> };
    expect(out.ok).toBe(300);
    const local = out.byBody["local-app"] ?? 0;
    expect(local / 300).toBeGreaterThan(0.38);
    expect(local / 300).toBeLessThan(0.62);
    expect(local + (out.byBody["remote-app"] ?? 0)).toBe(300);
  });

  test("an address added to eth1 while running gets a listener within a few seconds", async () => {
    await c.node("gw").must(["ip", "addr", "add", `${OUTSIDE_GW_2}/24`, "dev", "eth1"]);
    const t0 = Date.now();
    const ok = await until(async () => (await curl(["--max-time", "1", `http://${OUTSIDE_GW_2}:${HTTP_PORT}/local`])).stdout === "local-app", 8000, 100);
    expect(ok).toBe(true);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  test("a rotated certificate is served to new handshakes within a second", async () => {
    const subject = async () => {
      const r = await outside.exec(["sh", "-c", `echo | openssl s_client -connect ${OUTSIDE_GW}:${HTTPS_PORT} -servername secure.example -cert ${client.cert} -key ${client.key} 2>/dev/null | openssl x509 -noout -subject`]);
      return r.stdout.trim();
    };
    expect(await subject()).toContain("secure.example");
    const t0 = Date.now();
    c.writeManifest("secret.yaml", secretYaml("secure-tls", rotated.cert, rotated.key, pki.ca));
    const ok = await until(async () => (await subject()).includes("rotated"), 5000, 50);
    const ms = Date.now() - t0;
    expect(ok).toBe(true);
    expect(ms).toBeLessThan(1000);
    const after = await curl(["--cert", client.cert, "--key", client.key, "--cacert", pki.ca, "--resolve", `secure.example:${HTTPS_PORT}:${OUTSIDE_GW}`, `https://secure.example:${HTTPS_PORT}/`]);
    expect(after.stdout).toBe("remote-app");
  });

  test("/routes on the gateway's admin port shows its listeners and routes", async () => {
    const r = await c.node("gw").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10552/routes"]);
    const g = JSON.parse(r.stdout).gateway;
    expect(g.addresses).toEqual([OUTSIDE_GW, OUTSIDE_GW_2]);
    const want = [OUTSIDE_GW, OUTSIDE_GW_2].flatMap((a) => [HTTP_PORT, HOSTS_PORT, HTTPS_PORT].map((p) => `${a}:${p}`));
    expect(g.listeners.map((l: { listen: string }) => l.listen).sort()).toEqual(want.sort());
    const http = g.ports.find((p: { port: number }) => p.port === HTTP_PORT);
    const byHost = Object.fromEntries(http.hosts.map((h: { host: string; routes: { id: string }[] }) => [h.host, h.routes.map((x) => x.id)]));
    expect(byHost["*"]).toEqual(["default/routes:local", "default/routes:remote", "default/routes:split"]);
    // The secure VirtualService binds to the HTTP server too (its "*" covers secure.example).
    expect(byHost["secure.example"]).toEqual(["default/secure:http[0]"]);
    const named = g.ports.find((p: { port: number }) => p.port === HOSTS_PORT);
    const namedHosts = Object.fromEntries(named.hosts.map((h: { host: string; routes: { id: string }[] }) => [h.host, h.routes.map((x) => x.id)]));
    expect(Object.keys(namedHosts).sort()).toEqual(["local.example", "remote.example"]);
    expect(namedHosts["local.example"]).toContain("default/by-host-local:app");
    expect(namedHosts["local.example"]).not.toContain("default/by-host-remote:app");
  });
});
