// The README's first command, end to end: `edgemesh dev` on a manifest folder, real backends,
// real clients (fetch, dig), manifest edits taking effect while it runs.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnWatched, type Watched } from "../support/process.ts";

const ROOT = resolve(import.meta.dir, "../..");

function manifest(backendPort: number): string {
  return `apiVersion: v1
kind: Service
metadata: { name: hello, namespace: demo }
spec:
  clusterIP: 10.96.7.7
  ports: [{ name: http, port: 80, protocol: TCP, targetPort: http }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hello-1
  namespace: demo
  labels: { kubernetes.io/service-name: hello }
addressType: IPv4
ports: [{ name: http, port: ${backendPort}, protocol: TCP }]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: { ready: true }
`;
}

describe("edgemesh dev", () => {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-dev-"));
  const backends = ["one", "two"].map((name) =>
    Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(`backend ${name}`) }),
  );
  let dev: Watched;
  let admin = "";
  let dnsPort = 0;

  beforeAll(async () => {
    writeFileSync(join(dir, "hello.yaml"), manifest(backends[0]!.port!));
    dev = spawnWatched([process.execPath, join(ROOT, "src/main/index.ts"), "dev", "--manifests", dir, "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"]);
    admin = (await dev.waitFor(/admin http:\/\/([\d.]+:\d+)/))[1]!;
    dnsPort = Number((await dev.waitFor(/dns [\d.]+:(\d+) udp/))[1]);
  });

  afterAll(async () => {
    await dev?.kill();
    for (const b of backends) b.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  async function listenAddress(): Promise<string> {
    const routes = (await (await fetch(`http://${admin}/routes`)).json()) as { services: { name: string; listen: string }[] };
    const hello = routes.services.find((s) => s.name === "hello");
    expect(hello).toBeDefined();
    return hello!.listen;
  }

  test("prints the service table with a loopback listen address", async () => {
    const m = await dev.waitFor(/demo\/hello\s+80\/TCP\s+10\.96\.7\.7\s+(127\.0\.0\.1:\d+)/);
    expect(m[1]).toBe(await listenAddress());
  });

  test("traffic to the listen address reaches the endpoint", async () => {
    const res = await fetch(`http://${await listenAddress()}/`);
    expect(await res.text()).toBe("backend one");
  });

  test("DNS answers the service name with the listen IP", async () => {
    const dig = Bun.spawnSync(["dig", "+short", "@127.0.0.1", "-p", String(dnsPort), "hello.demo.svc.cluster.local", "A"]);
    expect(dig.stdout.toString().trim()).toBe("127.0.0.1");
  });

  test("a manifest edit moves new connections to the new endpoint within a second", async () => {
    const listen = await listenAddress();
    writeFileSync(join(dir, "hello.yaml"), manifest(backends[1]!.port!));
    const deadline = Date.now() + 1000;
    let body = "";
    while (Date.now() < deadline) {
      body = await (await fetch(`http://${listen}/`, { keepalive: false })).text();
      if (body === "backend two") break;
      await Bun.sleep(25);
    }
    expect(body).toBe("backend two");
    expect(await listenAddress()).toBe(listen);
  });

  test("a malformed manifest is reported and the last good routes stay", async () => {
    writeFileSync(join(dir, "broken.yaml"), "apiVersion: v1\nkind: Service\nmetadata: [oops\n");
    await dev.waitFor(/broken\.yaml/, 3000);
    const res = await fetch(`http://${await listenAddress()}/`, { keepalive: false });
    expect(await res.text()).toBe("backend two");
  });
});
