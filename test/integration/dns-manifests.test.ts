// End to end through the real control plane: a manifest folder -> object store -> publisher ->
// DNS templates, queried with `dig`. Names follow manifest edits within a second.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManifestSource, createObjectStore, createPublisher } from "../../src/control/index.ts";
import { createDnsServer, type DnsServer } from "../../src/dns/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const service = (name: string, ip: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  clusterIP: ${ip}
  ports:
    - name: http
      port: 80
      protocol: TCP
`;

const dir = mkdtempSync(join(tmpdir(), "dns-manifests-"));
const log = createMemoryLogger();
const store = createObjectStore();
const source = createManifestSource({ dir, store, log });
const publisher = createPublisher({ store, compileOptions: { serviceFilterMode: "FilterIfLabelExists" }, log });
let server: DnsServer;
let port = 0;

async function dig(name: string): Promise<string> {
  const proc = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+short", "+tries=1", "+time=2", name], { stdout: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  return out.trim();
}

/** Poll dig until it returns `want`; returns the ms it took, or throws after `ms`. */
async function until(name: string, want: string, ms = 3000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if ((await dig(name)) === want) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`${name} did not become ${JSON.stringify(want)} within ${ms} ms`);
    await Bun.sleep(20);
  }
}

beforeAll(async () => {
  writeFileSync(join(dir, "web.yaml"), service("web", "10.96.0.10"));
  await source.start();
  publisher.flush();
  server = createDnsServer({
    table: publisher, listen: { host: "127.0.0.1", port: 0 }, tcp: true, clusterDomain: "cluster.local", ttl: 5,
    upstreams: ["127.0.0.1:9"], cacheSize: 10, metrics: createMetrics(), log, forwardTimeoutMs: 200,
  });
  port = (await server.start()).udpPort;
});

afterAll(() => {
  server?.stop();
  source.stop();
  publisher.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a service from the manifest folder is answered", async () => {
  expect(await dig("web.default.svc.cluster.local")).toBe("10.96.0.10");
});

// The issue asks for "within a second"; the bound here is looser (a loaded CI machine) and the
// typical figure (~100 ms per edit, watcher debounce + publish merge) is in the final report.
test("editing, adding and deleting manifests changes the answers", async () => {
  writeFileSync(join(dir, "web.yaml"), service("web", "10.96.0.11"));
  await until("web.default.svc.cluster.local", "10.96.0.11");
  writeFileSync(join(dir, "api.yaml"), service("api", "10.96.0.12"));
  await until("api.default.svc.cluster.local", "10.96.0.12");
  rmSync(join(dir, "api.yaml"));
  await until("api.default.svc.cluster.local", "");
  expect(await dig("web.default.svc.cluster.local")).toBe("10.96.0.11");
});
