// The gateway with the agent's splice(2)/flow-loop engine, as src/main/gateway.ts runs it. The
// engine moves bytes between two plain kernel sockets; a TLS-terminated gateway port's client is a
// node:tls stream whose plaintext exists only in the process, so it must never be handed over (the
// engine would splice ciphertext into the backend and plaintext back to the client). A plain TCP
// port's elephant flow must be. 8 MiB each way through both kinds of port, checked by sha256, with
// the engine's adoption counter read before and after each transfer.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { createHash } from "node:crypto";
import tls from "node:tls";
import { createZeroCopyIfSupported } from "../../src/hotpath/zerocopy/index.ts";
import { createTestPki, type TestPki } from "../support/certs.ts";
import { gatewayObject, service, somePort, startGateway, tlsSecret, virtualService, type TestGateway } from "./gateway-support.ts";

const TLS_PORT = somePort();
const TCP_PORT = TLS_PORT + 1;
const BYTES = 8 * 1024 * 1024;

/** Deterministic payload: a counter pattern, so a shifted or dropped chunk changes the digest. */
function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >>> 13)) & 0xff;
  return b;
}

const UP = payload(BYTES, 7);
const DOWN = payload(BYTES, 11);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Backend {
  state: { got: ReturnType<typeof createHash>; gotBytes: number; out: Uint8Array; off: number; recorded: boolean };
}

/**
 * Backend: on connect sends DOWN (drain-aware), hashes what it receives, and on the client's FIN
 * answers nothing more but closes; the test compares its digest of the upload.
 */
let uploads: { bytes: number; digest: string }[] = [];
function record(s: Socket<Backend["state"]>): void {
  const st = s.data;
  if (st.recorded) return;
  st.recorded = true;
  uploads.push({ bytes: st.gotBytes, digest: st.got.digest("hex") });
}
function pump(s: Socket<Backend["state"]>): void {
  const st = s.data;
  while (st.off < st.out.length) {
    const n = s.write(st.out.subarray(st.off, Math.min(st.out.length, st.off + 256 * 1024)));
    if (n <= 0) return;
    st.off += n;
  }
  s.shutdown();
}

let pki: TestPki;
let backend: TCPSocketListener<Backend["state"]>;
let g: TestGateway;
const adopted = () => g.metrics.snapshot()["zerocopy_adopted_total"] ?? 0;

beforeAll(async () => {
  pki = await createTestPki();
  backend = Bun.listen<Backend["state"]>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.data = { got: createHash("sha256"), gotBytes: 0, out: DOWN, off: 0, recorded: false };
        pump(s);
      },
      data(s, d) {
        s.data.got.update(d);
        s.data.gotBytes += d.length;
      },
      drain(s) {
        pump(s);
      },
      end(s) {
        record(s);
        s.end();
      },
      // Bun reports the client's FIN as close, not end, once our own side is shut already.
      close(s) {
        record(s);
      },
    },
  });
  const svc = service("bulk", 9000, [{ ip: "127.0.0.1", port: backend.port }]);
  g = await startGateway(
    {
      Service: svc.filter((o) => o.kind === "Service"),
      EndpointSlice: svc.filter((o) => o.kind === "EndpointSlice"),
      Secret: [tlsSecret("tls-srv", pki.server.cert, pki.server.key)],
      Gateway: [
        gatewayObject("gw", [
          { port: { number: TLS_PORT, protocol: "TLS" }, hosts: ["*"], tls: { mode: "SIMPLE", credentialName: "tls-srv" } },
          { port: { number: TCP_PORT, protocol: "TCP" }, hosts: ["*"] },
        ]),
      ],
      VirtualService: [virtualService("bulk", { hosts: ["*"], gateways: ["gw"], tcp: [{ route: [{ destination: { host: "bulk" } }] }] })],
    },
    {},
    (metrics, log) => createZeroCopyIfSupported({ maxPairs: 16, log, metrics }),
  );
});

afterAll(async () => {
  if (g) {
    g.gateway.stop();
    await g.proxy.stop();
    g.routes.stop();
    g.tables.stop();
  }
  backend?.stop(true);
  pki?.cleanup();
});

/** Upload UP and download DOWN over one connection (node:net or node:tls), both to the end. */
function transfer(open: () => import("node:net").Socket): Promise<{ down: string; downBytes: number }> {
  return new Promise((resolve, reject) => {
    const s = open();
    const h = createHash("sha256");
    let n = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out after ${n} bytes down`));
    }, 30_000);
    s.on("data", (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ down: h.digest("hex"), downBytes: n });
    });
    s.end(UP);
  });
}

describe("gateway with the zero-copy engine", () => {
  test("a plain TCP port's elephant flow is handed to the engine and arrives intact both ways", async () => {
    uploads = [];
    const before = adopted();
    const net = await import("node:net");
    const r = await transfer(() => net.connect({ host: "127.0.0.1", port: g.port(TCP_PORT), allowHalfOpen: true }));
    expect(r.downBytes).toBe(BYTES);
    expect(r.down).toBe(sha(DOWN));
    for (let i = 0; i < 100 && uploads.length === 0; i++) await Bun.sleep(10);
    expect(uploads).toEqual([{ bytes: BYTES, digest: sha(UP) }]);
    // The engine is live in this gateway: the same flow a TLS port must not hand over is adopted here.
    expect(adopted()).toBe(before + 1);
  });

  test("a TLS-terminated port's flow stays in the process (never spliced as ciphertext) and arrives intact", async () => {
    uploads = [];
    const before = adopted();
    const r = await transfer(() => tls.connect({ host: "127.0.0.1", port: g.port(TLS_PORT), servername: "localhost", ca: pki.ca.pem }));
    expect(r.downBytes).toBe(BYTES);
    expect(r.down).toBe(sha(DOWN));
    for (let i = 0; i < 100 && uploads.length === 0; i++) await Bun.sleep(10);
    expect(uploads).toEqual([{ bytes: BYTES, digest: sha(UP) }]);
    expect(adopted()).toBe(before);
  });
});
