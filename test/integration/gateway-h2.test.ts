// HTTP/2 through the gateway with a real client (curl) and a real h2 server (node:http2 under
// Bun): over TLS, negotiated by ALPN on an HTTP2 server with a certificate (terminated, then the
// h2 connection passed to one backend as h2c), also for a client that sends no SNI (an IP URL),
// and h2c with prior knowledge on a plain HTTP2 port. The backend reports the HTTP version it saw.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createTestPki, type TestPki } from "../support/certs.ts";
import { gatewayObject, service, somePort, startGateway, tlsSecret, virtualService, type TestGateway } from "./gateway-support.ts";

let pki: TestPki;
let g: TestGateway;
let backend: http2.Http2Server;
const seen: string[] = [];
const TLS_PORT = somePort();
const H2C_PORT = TLS_PORT + 1;

beforeAll(async () => {
  pki = await createTestPki();
  backend = http2.createServer((req, res) => {
    seen.push(`${req.httpVersion} ${req.url}`);
    res.end(`h2-backend ${req.httpVersion} ${req.url}`);
  });
  await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", () => resolve()));
  const port = (backend.address() as AddressInfo).port;
  const objs = service("grpc", 80, [{ ip: "127.0.0.1", port }]);
  g = await startGateway({
    Service: objs.filter((o) => o.kind === "Service"),
    EndpointSlice: objs.filter((o) => o.kind === "EndpointSlice"),
    Secret: [tlsSecret("h2-tls", await Bun.file(pki.server.certFile).text(), await Bun.file(pki.server.keyFile).text())],
    Gateway: [
      gatewayObject("gw", [
        { port: { number: TLS_PORT, name: "h2", protocol: "HTTP2" }, hosts: ["*"], tls: { mode: "SIMPLE", credentialName: "h2-tls" } },
        { port: { number: H2C_PORT, name: "h2c", protocol: "GRPC" }, hosts: ["*"] },
      ]),
    ],
    VirtualService: [virtualService("v", { hosts: ["*"], gateways: ["gw"], http: [{ route: [{ destination: { host: "grpc" } }] }] })],
  });
});

afterAll(() => {
  g?.stop();
  backend?.close();
  pki?.cleanup();
});

async function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_version}", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

describe("HTTP/2 through the gateway", () => {
  test("h2 over TLS: ALPN picks h2, the gateway terminates and passes the h2 connection to the backend, two streams on it", async () => {
    const port = g.port(TLS_PORT);
    const before = seen.length;
    const url = (p: string) => `https://localhost:${port}${p}`;
    const r = await curl(["--http2", "--cacert", pki.ca.file, "--resolve", `localhost:${port}:127.0.0.1`, url("/a"), url("/b")]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    // Both responses, each followed by the version curl negotiated with the gateway.
    expect(r.out).toBe("h2-backend 2.0 /a\n2h2-backend 2.0 /b\n2");
    expect(seen.slice(before)).toEqual(["2.0 /a", "2.0 /b"]);
    expect(g.metrics.snapshot()["gateway_upgrades_total"]).toBeGreaterThanOrEqual(1);
  });

  // Failed before sniName(): node:tls gives servername false without SNI, and ALPNCallback threw.
  test("a client without SNI (https://127.0.0.1) that offers ALPN gets h2 too", async () => {
    const port = g.port(TLS_PORT);
    const r = await curl(["--http2", "--cacert", pki.ca.file, `https://127.0.0.1:${port}/ip`]);
    expect(r.err).toBe("");
    expect(r.out).toBe("h2-backend 2.0 /ip\n2");
  });

  test("an HTTP/1.1-only client on the same port is told http/1.1 by ALPN and gets an answer from the gateway, not a hang", async () => {
    const port = g.port(TLS_PORT);
    // The backend speaks h2 only: the gateway forwards the HTTP/1.1 request and answers 502.
    const r = await curl(["--http1.1", "--cacert", pki.ca.file, "--resolve", `localhost:${port}:127.0.0.1`, `https://localhost:${port}/one`]);
    expect(r.code).toBe(0);
    expect(r.out.endsWith("\n1.1")).toBe(true);
    expect(r.out).toBe("upstream closed or sent an invalid response\n\n1.1"); // the 502's body
  });

  test("h2c with prior knowledge on a GRPC port: passed through to the h2 backend", async () => {
    const port = g.port(H2C_PORT);
    const before = seen.length;
    const r = await curl(["--http2-prior-knowledge", `http://127.0.0.1:${port}/svc.Echo/Call`]);
    expect(r.err).toBe("");
    expect(r.out).toBe("h2-backend 2.0 /svc.Echo/Call\n2");
    expect(seen.slice(before)).toEqual(["2.0 /svc.Echo/Call"]);
  });
});
