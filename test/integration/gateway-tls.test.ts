import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, TCPSocketListener } from "bun";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { createTestPki, type TestPki } from "../support/certs.ts";
import { backendService, gatewayObject, service, somePort, startBackend, startGateway, tlsSecret, virtualService, type Backend, type TestGateway } from "./gateway-support.ts";

/** A server certificate for `names`, signed by the test CA (openssl). */
async function issued(pki: TestPki, name: string, names: string[]): Promise<{ cert: string; key: string }> {
  const p = (f: string) => join(pki.dir, f);
  const run = (argv: string[]) => {
    const r = Bun.spawnSync(argv, { cwd: pki.dir, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  };
  writeFileSync(p(`${name}.ext`), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\nextendedKeyUsage=serverAuth\n`);
  run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", `/CN=${name}`]);
  run(["openssl", "x509", "-req", "-in", p(`${name}.csr`), "-CA", pki.ca.file, "-CAkey", pki.ca.key, "-CAcreateserial", "-out", p(`${name}.crt`), "-days", "2", "-extfile", p(`${name}.ext`)]);
  return { cert: await Bun.file(p(`${name}.crt`)).text(), key: await Bun.file(p(`${name}.key`)).text() };
}

interface Handshake {
  ok: boolean;
  subject: string;
  status: number;
  body: string;
  error: string;
}

/** One HTTPS request with node:tls (SNI, client certificate), reporting the served certificate. */
function httpsGet(port: number, servername: string, ca: string, client?: { cert: string; key: string }, path = "/"): Promise<Handshake> {
  return new Promise((resolve) => {
    let data = "";
    let subject = "";
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca, cert: client?.cert, key: client?.key }, () => {
      subject = String(s.getPeerCertificate()?.subject?.CN ?? "");
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    const done = (error: string) => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0);
      const body = data.slice(data.indexOf("\r\n\r\n") + 4);
      resolve({ ok: status > 0, subject, status, body, error });
    };
    s.setTimeout(3000, () => s.destroy(new Error("timeout")));
    s.on("data", (d) => (data += d.toString()));
    s.on("error", (e) => done(e.message));
    s.on("close", () => done(""));
  });
}

let pki: TestPki;
let web: Backend;
let api: Backend;
let g: TestGateway;
let tlsBackend: Server<unknown>;
let echo: TCPSocketListener<unknown>;
const HTTPS = somePort();
const PASS = HTTPS + 1;
const TCP = HTTPS + 2;
let certA: { cert: string; key: string };
let certA2: { cert: string; key: string };
let certB: { cert: string; key: string };
let certPass: { cert: string; key: string };

beforeAll(async () => {
  pki = await createTestPki();
  certA = await issued(pki, "a.example", ["a.example"]);
  certA2 = await issued(pki, "a2.example", ["a.example"]);
  certB = await issued(pki, "b.example", ["b.example"]);
  certPass = await issued(pki, "pass.example", ["pass.example"]);
  web = startBackend("web");
  api = startBackend("api");
  tlsBackend = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: certPass.cert, key: certPass.key }, fetch: () => new Response("passed-through") });
  echo = Bun.listen<unknown>({ hostname: "127.0.0.1", port: 0, socket: { data(s, d) { s.write(d); } } });
  const objs = [...backendService("web", web), ...backendService("api", api), ...service("pass", 443, [{ ip: "127.0.0.1", port: tlsBackend.port! }]), ...service("echo", 7, [{ ip: "127.0.0.1", port: echo.port }])];
  g = await startGateway({
    Service: objs.filter((o) => o.kind === "Service"),
    EndpointSlice: objs.filter((o) => o.kind === "EndpointSlice"),
    Secret: [tlsSecret("tls-a", certA.cert, certA.key), tlsSecret("tls-b", certB.cert, certB.key, pki.ca.pem)],
    Gateway: [
      gatewayObject("gw", [
        { port: { number: HTTPS, protocol: "HTTPS" }, hosts: ["a.example"], tls: { mode: "SIMPLE", credentialName: "tls-a" } },
        { port: { number: HTTPS, protocol: "HTTPS" }, hosts: ["b.example"], tls: { mode: "SIMPLE", credentialName: "tls-b" } },
        { port: { number: PASS, protocol: "TLS" }, hosts: ["pass.example"], tls: { mode: "PASSTHROUGH" } },
        { port: { number: TCP, protocol: "TCP" }, hosts: ["*"] },
      ]),
    ],
    VirtualService: [
      virtualService("a", { hosts: ["a.example"], gateways: ["gw"], http: [{ route: [{ destination: { host: "web" } }] }] }),
      virtualService("b", { hosts: ["b.example"], gateways: ["gw"], http: [{ route: [{ destination: { host: "api" } }] }] }),
      virtualService("pass", { hosts: ["pass.example"], gateways: ["gw"], tls: [{ match: [{ sniHosts: ["pass.example"] }], route: [{ destination: { host: "pass" } }] }] }),
      virtualService("tcp", { hosts: ["*"], gateways: ["gw"], tcp: [{ route: [{ destination: { host: "echo" } }] }] }),
    ],
  });
});

afterAll(() => {
  g?.stop();
  web?.stop();
  api?.stop();
  tlsBackend?.stop(true);
  echo?.stop(true);
  pki?.cleanup();
});

describe("HTTPS termination", () => {
  test("SNI picks each host's certificate; requests are routed by Host behind TLS", async () => {
    const a = await httpsGet(g.port(HTTPS), "a.example", pki.ca.pem);
    expect(a.subject).toBe("a.example");
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body).name).toBe("web");
    expect(JSON.parse(a.body).headers["x-forwarded-proto"]).toBe("https");
    const b = await httpsGet(g.port(HTTPS), "b.example", pki.ca.pem, pki.client);
    expect(b.subject).toBe("b.example");
    expect(JSON.parse(b.body).name).toBe("api");
  });

  test("ca.crt in the Secret: a client certificate is required; none, or one from another CA, is refused", async () => {
    const none = await httpsGet(g.port(HTTPS), "b.example", pki.ca.pem);
    expect(none.status).toBe(0);
    const stranger = await httpsGet(g.port(HTTPS), "b.example", pki.ca.pem, pki.strangerClient);
    expect(stranger.status).toBe(0);
    const good = await httpsGet(g.port(HTTPS), "b.example", pki.ca.pem, pki.client);
    expect(good.status).toBe(200);
    expect(g.metrics.snapshot()["gateway_tls_client_cert_refused_total"]).toBeGreaterThanOrEqual(2);
  });

  test("a rotated certificate is served to new handshakes within a second, open connections stay", async () => {
    // An open keep-alive TLS connection across the rotation.
    const open = tls.connect({ host: "127.0.0.1", port: g.port(HTTPS), servername: "a.example", ca: pki.ca.pem });
    await new Promise((r) => open.once("secureConnect", r));
    const t0 = Date.now();
    await g.apply({ Secret: [tlsSecret("tls-a", certA2.cert, certA2.key), tlsSecret("tls-b", certB.cert, certB.key, pki.ca.pem)] });
    let subject = "";
    while (Date.now() - t0 < 3000) {
      subject = (await httpsGet(g.port(HTTPS), "a.example", pki.ca.pem)).subject;
      if (subject === "a2.example") break;
      await Bun.sleep(20);
    }
    expect(subject).toBe("a2.example");
    expect(Date.now() - t0).toBeLessThan(1000);
    let got = "";
    open.on("data", (d) => (got += d.toString()));
    open.write("GET /still HTTP/1.1\r\nHost: a.example\r\n\r\n");
    for (let i = 0; i < 50 && !got.includes("\r\n\r\n{"); i++) await Bun.sleep(20);
    expect(got).toStartWith("HTTP/1.1 200");
    expect(String(open.getPeerCertificate().subject.CN)).toBe("a.example");
    open.destroy();
  });

  test("a handshake with garbage is dropped and counted; the listener keeps serving", async () => {
    const before = g.metrics.snapshot()["gateway_tls_handshake_failures_total"] ?? 0;
    let closed = false;
    const s = await Bun.connect({ hostname: "127.0.0.1", port: g.port(HTTPS), socket: { data() {}, close() { closed = true; } } });
    s.write("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    for (let i = 0; i < 50 && !closed; i++) await Bun.sleep(20);
    expect(closed).toBe(true);
    expect(g.metrics.snapshot()["gateway_tls_handshake_failures_total"]).toBeGreaterThan(before);
    expect((await httpsGet(g.port(HTTPS), "a.example", pki.ca.pem)).status).toBe(200);
  });
});

describe("whole-connection routes", () => {
  test("TLS passthrough by SNI: the backend's own certificate reaches the client", async () => {
    const r = await httpsGet(g.port(PASS), "pass.example", pki.ca.pem);
    expect(r.subject).toBe("pass.example");
    expect(r.body).toBe("passed-through");
  });

  test("a ClientHello for a name no route has is dropped", async () => {
    const r = await httpsGet(g.port(PASS), "other.example", pki.ca.pem);
    expect(r.status).toBe(0);
  });

  test("a TCP route splices bytes both ways", async () => {
    let got = "";
    const s = await Bun.connect({ hostname: "127.0.0.1", port: g.port(TCP), socket: { data(_s, d) { got += Buffer.from(d).toString(); } } });
    s.write("ping-1");
    for (let i = 0; i < 50 && got !== "ping-1"; i++) await Bun.sleep(10);
    expect(got).toBe("ping-1");
    s.end();
  });
});
