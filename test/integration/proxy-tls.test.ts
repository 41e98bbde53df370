import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { startProxy } from "./proxy-support.ts";

const dir = mkdtempSync(join(tmpdir(), "edgemesh-tls-"));
const cleanups: (() => void)[] = [() => rmSync(dir, { recursive: true, force: true })];
afterAll(() => {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {}
  }
});

test("HTTPS passes through untouched: the client verifies the backend's own certificate", async () => {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const gen = Bun.spawnSync([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=backend.test",
    "-addext", "subjectAltName=DNS:backend.test,IP:127.0.0.1",
  ]);
  expect(gen.exitCode).toBe(0);
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { key: Bun.file(key), cert: Bun.file(cert) },
    fetch: async (req) => new Response(`secure ${req.method} ${await req.text()}`),
  });
  cleanups.push(() => server.stop(true));
  // With the zero-copy engine, as the agent runs (TLS bytes are opaque to the splice either way).
  const zeroCopy = createZeroCopyEngine({ maxPairs: 64, log: createMemoryLogger(), metrics: createMetrics() });
  const h = startProxy([{ name: "tls", port: 443, endpoints: [{ port: server.port! }] }], { zeroCopy });
  cleanups.push(() => h.proxy.stop());
  const { port } = await h.addr("tls", 443);
  const ca = readFileSync(cert, "utf8");
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`https://127.0.0.1:${port}/`, { method: "POST", body: `n${i}`, tls: { ca } });
    expect(await r.text()).toBe(`secure POST n${i}`);
  }
  // A client that does not trust the certificate is refused by TLS itself, end to end.
  const refused = await fetch(`https://127.0.0.1:${port}/`).then(() => "ok", () => "tls error");
  expect(refused).toBe("tls error");
});
