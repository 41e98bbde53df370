// `edgemesh gateway` as its own process, in a scratch network namespace (lo only), fed by a
// manifest folder: what only a separate process shows. /readyz is 503 while a Gateway port
// another process holds cannot be bound (naming the listener and the error) and 200 once the
// port is freed; and bad input of every kind (400, 431, 404, 502, 503, slowloris 408, TLS
// garbage, clients that leave mid-response or reset at once) leaves the gateway with the same
// open file descriptors (/proc/PID/fd) as before, once connections settle.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createScratchNamespace } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = process.execPath;
const HTTP = 8080;
/** Held by a squatter when the gateway starts. */
const SQUATTED = 8081;
const HTTPS = 8443;
const ADMIN = "127.0.0.1:10552";

const BACKENDS = `
Bun.serve({ hostname: "127.0.0.1", port: 9001, fetch(req) {
  return new URL(req.url).pathname.startsWith("/big") ? new Response(new Uint8Array(8 << 20)) : new Response("app");
} });
// Answers anything with bytes that are not HTTP, then closes: the gateway's 502.
Bun.listen({ hostname: "127.0.0.1", port: 9002, socket: { data(s) { s.write("NOT HTTP AT ALL\\r\\n\\r\\n"); s.end(); }, error() {} } });
console.log("backends up");
`;

/** Every kind of bad client at once; prints how each connection ended, by case. */
const BAD_CLIENTS = `
import net from "node:net";
const host = "127.0.0.1";
function raw(port, payload, o = {}) {
  return new Promise((done) => {
    let got = "";
    const s = net.connect({ host, port });
    const finish = (how) => { s.destroy(); done(how); };
    const timer = setTimeout(() => finish("timeout"), 15000);
    s.on("connect", () => {
      if (o.resetAtOnce) { s.resetAndDestroy(); clearTimeout(timer); return done("reset"); }
      if (payload !== null) s.write(payload);
    });
    s.on("data", (d) => {
      got += d.toString("latin1");
      if (o.leaveAfterBytes && got.length >= o.leaveAfterBytes) { clearTimeout(timer); finish("left"); }
    });
    s.on("error", () => {});
    s.on("close", () => { clearTimeout(timer); done(got === "" ? "closed" : got.charCodeAt(0) === 0x15 ? "tls alert, closed" : got.split("\\r\\n")[0]); });
  });
}
const times = (n, f) => Promise.all(Array.from({ length: n }, f));
const get = (path, extra = "") => "GET " + path + " HTTP/1.1\\r\\nHost: gw.test\\r\\nConnection: close\\r\\n" + extra + "\\r\\n";
const [http, https] = process.argv.slice(2).map(Number);
const cases = {
  badRequest: times(20, () => raw(http, "NOT A REQUEST LINE\\r\\n\\r\\n")),
  tooLarge: times(10, () => raw(http, get("/app", "X-Big: " + "a".repeat(40000) + "\\r\\n"))),
  noRoute: times(20, () => raw(http, get("/nothing-here"))),
  badGateway: times(10, () => raw(http, get("/garbage"))),
  unavailable: times(10, () => raw(http, get("/dead"))),
  slowloris: times(10, () => raw(http, "GET /app HTTP/1.1\\r\\nHost: gw.test\\r\\n")),
  tlsGarbage: times(10, () => raw(https, Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 37 + 11) & 255)))),
  tlsSilent: times(5, () => raw(https, null, { resetAtOnce: true })),
  leftMidResponse: times(10, () => raw(http, get("/big"), { leaveAfterBytes: 100000 })),
  resetAtOnce: times(10, () => raw(http, null, { resetAtOnce: true })),
};
const out = {};
for (const [k, p] of Object.entries(cases)) {
  const r = await p;
  out[k] = {};
  for (const x of r) out[k][x] = (out[k][x] ?? 0) + 1;
}
console.log(JSON.stringify(out));
`;

function manifests(): string {
  const svc = (name: string, ip: string, port: number) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${ip}
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
  return `${svc("app", "10.96.7.1", 9001)}${svc("garbage", "10.96.7.2", 9002)}${svc("dead", "10.96.7.3", 1)}apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  servers:
    - { port: { number: ${HTTP}, name: http, protocol: HTTP }, hosts: ["*"] }
    - { port: { number: ${SQUATTED}, name: http-squatted, protocol: HTTP }, hosts: ["*"] }
    - { port: { number: ${HTTPS}, name: https, protocol: HTTPS }, hosts: ["*"], tls: { mode: SIMPLE, credentialName: gw-tls } }
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
    - { match: [{ uri: { prefix: /app } }, { uri: { prefix: /big } }], route: [{ destination: { host: app } }] }
    - { match: [{ uri: { prefix: /garbage } }], route: [{ destination: { host: garbage } }] }
    - { match: [{ uri: { prefix: /dead } }], route: [{ destination: { host: dead } }] }
`;
}

describe("edgemesh gateway as a process", () => {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-gw-proc-"));
  let ns: Awaited<ReturnType<typeof createScratchNamespace>>;
  let gateway: Watched;
  let squatter: Watched;

  const curl = (args: string[]) => ns.exec(["curl", "-sS", "--max-time", "3", ...args]);
  const readyz = async () => {
    const r = await curl(["-w", "\n%{http_code}", `http://${ADMIN}/readyz`]);
    const lines = r.stdout.trim().split("\n");
    return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join("\n").trim() };
  };
  const fds = () => readdirSync(`/proc/${gateway.proc.pid}/fd`).length;

  beforeAll(async () => {
    ns = await createScratchNamespace("gwproc");
    const manifestDir = join(dir, "manifests");
    Bun.spawnSync(["mkdir", "-p", manifestDir]);
    const ssl = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "tls.key"), "-out", join(dir, "tls.crt"), "-days", "1", "-subj", "/CN=gw.test", "-addext", "subjectAltName=DNS:gw.test"], { stderr: "pipe" });
    if (ssl.exitCode !== 0) throw new Error(`openssl: ${ssl.stderr.toString()}`);
    const b64 = (f: string) => readFileSync(join(dir, f)).toString("base64");
    writeFileSync(
      join(manifestDir, "all.yaml"),
      `${manifests()}---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: { name: gw-tls, namespace: default }
data: { tls.crt: ${b64("tls.crt")}, tls.key: ${b64("tls.key")} }
`,
    );
    writeFileSync(join(dir, "backends.ts"), BACKENDS);
    writeFileSync(join(dir, "bad-clients.mjs"), BAD_CLIENTS);
    const backends = ns.spawn([BUN, join(dir, "backends.ts")]);
    await backends.waitFor(/backends up/, 10_000);
    // Holds the Gateway port 8081 before the gateway starts (no SO_REUSEADDR/REUSEPORT).
    squatter = ns.spawn(["socat", `TCP-LISTEN:${SQUATTED},bind=127.0.0.1`, "OPEN:/dev/null"]);
    for (let i = 0; i < 50 && !(await ns.exec(["ss", "-Hltn", `sport = :${SQUATTED}`])).stdout.includes(String(SQUATTED)); i++) await Bun.sleep(50);
    const config = join(dir, "edgemesh-gateway.yaml");
    writeFileSync(
      config,
      `apiVersion: gateway.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshGateway
kubeAPIConfig:
  manifestDir: ${manifestDir}
commonConfig:
  stateDir: ${join(dir, "state")}
  adminAddress: ${ADMIN}
modules:
  edgeGateway:
    enable: true
    nic: lo
  edgeTunnel:
    enable: false
`,
    );
    gateway = ns.spawn([BUN, join(ROOT, "src/main/index.ts"), "gateway", "--config", config], { env: { NODE_NAME: "gwp", EDGEMESH_LOG_LEVEL: "info" } });
    await gateway.waitFor(/\brunning\b/, 20_000);
  });

  afterAll(async () => {
    await gateway?.kill("SIGTERM").catch(() => 0);
    await ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("/readyz is 503 naming the listener while its port is held elsewhere, and 200 once it is freed and bound", async () => {
    // The other listeners serve meanwhile.
    expect((await curl([`http://127.0.0.1:${HTTP}/app`])).stdout).toBe("app");
    const held = await readyz();
    expect(held.status).toBe(503);
    expect(held.body).toContain(`listener 127.0.0.1:${SQUATTED} (HTTP): cannot bind: EADDRINUSE`);
    expect(held.body).not.toContain(`127.0.0.1:${HTTP} `);
    await squatter.kill("SIGTERM");
    const t0 = Date.now();
    let now = held;
    while (Date.now() - t0 < 8000 && now.status !== 200) {
      await Bun.sleep(100);
      now = await readyz();
    }
    expect(now).toEqual({ status: 200, body: "ready" });
    // Within one bind retry (2 s) plus the sweep.
    expect(Date.now() - t0).toBeLessThan(4000);
    expect((await curl([`http://127.0.0.1:${SQUATTED}/app`])).stdout).toBe("app");
  });

  test("bad input of every kind leaves the gateway's open file descriptors as they were", async () => {
    // Warm up: one pooled upstream to the backend and the TLS context exist before counting.
    expect((await curl([`http://127.0.0.1:${HTTP}/app`])).stdout).toBe("app");
    expect((await curl(["-k", `https://127.0.0.1:${HTTPS}/app`])).stdout).toBe("app");
    await Bun.sleep(300);
    // Descriptors other than idle pooled upstreams (the pool may legitimately shrink: an upstream
    // whose client left mid-response is closed, not pooled).
    const settled = async () => fds() - Number((await curl([`http://${ADMIN}/metrics`])).stdout.match(/^edgemesh_gateway_upstream_idle (\d+)/m)?.[1] ?? NaN);
    const before = await settled();
    expect(before).toBeGreaterThan(5);
    const r = await ns.exec([BUN, join(dir, "bad-clients.mjs"), String(HTTP), String(HTTPS)], { timeoutMs: 30_000 });
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, Record<string, number>>;
    expect(out).toEqual({
      badRequest: { "HTTP/1.1 400 Bad Request": 20 },
      tooLarge: { "HTTP/1.1 431 Request Header Fields Too Large": 10 },
      noRoute: { "HTTP/1.1 404 Not Found": 20 },
      badGateway: { "HTTP/1.1 502 Bad Gateway": 10 },
      unavailable: { "HTTP/1.1 503 Service Unavailable": 10 },
      slowloris: { "HTTP/1.1 408 Request Timeout": 10 },
      tlsGarbage: { "tls alert, closed": 10 },
      tlsSilent: { reset: 5 },
      leftMidResponse: { left: 10 },
      resetAtOnce: { reset: 10 },
    });
    // Settled: the same descriptors as before (sockets of the 115 clients and their upstreams gone).
    // The admin request itself is answered on a connection the gateway holds while counting: the same in both counts.
    let after = await settled();
    for (let i = 0; i < 50 && after !== before; i++) {
      await Bun.sleep(100);
      after = await settled();
    }
    expect({ fds: after }).toEqual({ fds: before });
    const metrics = (await curl([`http://${ADMIN}/metrics`])).stdout;
    expect(metrics).toMatch(/^edgemesh_gateway_connections_active 0$/m);
    expect(Number(metrics.match(/^edgemesh_gateway_tls_handshake_failures_total (\d+)/m)?.[1])).toBeGreaterThanOrEqual(10);
    // Still serving, on HTTP and HTTPS.
    expect((await curl([`http://127.0.0.1:${HTTP}/app`])).stdout).toBe("app");
    expect((await curl(["-k", `https://127.0.0.1:${HTTPS}/app`])).stdout).toBe("app");
  }, 40_000);
});
