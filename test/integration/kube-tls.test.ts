// TLS to the API under Bun: the settings must reach the connection (they do not with the stock
// @kubernetes/client-node under Bun, see src/control/kube/fetch-tls.ts). The stand-in requires a
// client certificate signed by the test CA, so a successful sync proves the client presented it.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createKubeFetch, makeApiClient } from "../../src/control/kube/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { makeSource, removeDir, waitFor, type Harness } from "../support/apiserver/harness.ts";
import { createTestPki, type TestPki } from "../support/certs.ts";

let pki: TestPki;
let api: StandInApiServer | undefined;
let h: Harness | undefined;

beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(() => pki.cleanup());
afterEach(async () => {
  await h?.source.stop();
  await api?.stop();
  if (h) removeDir(h.stateDir);
  api = h = undefined;
});

async function mtlsServer(extra: { token?: string } = {}) {
  const s = await startStandInApiServer({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.pem, requireClientCert: true }, ...extra });
  s.add("Service", fx.service("default", "web", "10.96.0.10"));
  return s;
}

describe("kubernetes source over TLS", () => {
  test("the right CA and a client certificate connect and sync (edge mode with authorization)", async () => {
    api = await mtlsServer();
    h = makeSource(api.url, { mode: "edge", tls: { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile } });
    await h.source.start();
    expect(h.source.status().live).toBe(true);
    expect(h.store.snapshot().Service.has("default/web")).toBe(true);
    api.add("Service", fx.service("default", "watched", "10.96.0.11"));
    await waitFor("watch over mTLS", () => h!.store.snapshot().Service.has("default/watched"));
  });

  test("a server certificate from another CA is refused", async () => {
    api = await mtlsServer();
    h = makeSource(api.url, { mode: "edge", initialSyncTimeoutMs: 1000, tls: { caFile: pki.wrongCa.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile } });
    await h.source.start();
    expect(h.source.ready()).toBe(false);
    expect(h.source.status().error).toMatch(/certificate/i);
    expect(api.requests).toHaveLength(0);
  });

  test("without a client certificate the server refuses the connection", async () => {
    api = await mtlsServer();
    const f = await createKubeFetch({ mode: "edge", server: api.url, tls: { caFile: pki.ca.file }, contentType: "", reason: "" });
    await expect(f.request("/api/v1/services")).rejects.toThrow();
    f.close();
    expect(api.requests).toHaveLength(0);
  });

  test("a client certificate from another CA is refused, the right one is accepted", async () => {
    api = await mtlsServer();
    const stranger = await createKubeFetch({ mode: "edge", server: api.url, tls: { caFile: pki.ca.file, certFile: pki.strangerClient.certFile, keyFile: pki.strangerClient.keyFile }, contentType: "", reason: "" });
    await expect(stranger.request("/api/v1/services")).rejects.toThrow();
    stranger.close();
    const right = await createKubeFetch({ mode: "edge", server: api.url, tls: { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile }, contentType: "", reason: "" });
    const res = await right.request("/api/v1/services");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(1);
    right.close();
  });

  test("insecureSkipTLSVerify accepts an unknown server CA and still sends the client certificate", async () => {
    api = await mtlsServer();
    h = makeSource(api.url, { mode: "edge", tls: { insecureSkipVerify: true, certFile: pki.client.certFile, keyFile: pki.client.keyFile } });
    await h.source.start();
    expect(h.source.status().live).toBe(true);
  });

  test("the bearer token is read from the token file and sent", async () => {
    api = await mtlsServer({ token: "s3cret-token" });
    const tokenFile = join(pki.dir, "token");
    writeFileSync(tokenFile, "s3cret-token\n");
    h = makeSource(api.url, { mode: "cloud", tokenFile, tls: { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile } });
    await h.source.start();
    expect(h.source.status().live).toBe(true);

    const wrong = join(pki.dir, "wrong-token");
    writeFileSync(wrong, "nope");
    const f = await createKubeFetch({ mode: "cloud", server: api.url, tokenFile: wrong, tls: { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile }, contentType: "", reason: "" });
    expect((await f.request("/api/v1/services")).status).toBe(401);
    f.close();
  });

  test("a kubeconfig with CA and client certificate data works (manual mode, through @kubernetes/client-node's KubeConfig)", async () => {
    api = await mtlsServer();
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const kubeconfig = join(pki.dir, "kubeconfig");
    writeFileSync(kubeconfig, [
      "apiVersion: v1", "kind: Config", "current-context: t",
      "clusters:", `- name: c`, `  cluster: {server: "${api.url}", certificate-authority-data: ${b64(pki.ca.pem)}}`,
      "users:", `- name: u`, `  user: {client-certificate-data: ${b64(pki.client.cert)}, client-key-data: ${b64(pki.client.key)}}`,
      "contexts:", "- name: t", "  context: {cluster: c, user: u}", "",
    ].join("\n"));
    h = makeSource("", { mode: "manual", server: undefined, kubeConfigPath: kubeconfig });
    await h.source.start();
    expect(h.source.status().live).toBe(true);
    expect(h.store.snapshot().Service.has("default/web")).toBe(true);
  });

  test("an unreadable certificate file is a clear start-up error", async () => {
    api = await mtlsServer();
    h = makeSource(api.url, { mode: "edge", tls: { caFile: join(pki.dir, "missing.crt") } });
    await expect(h.source.start()).rejects.toThrow(/cannot read CA file .*missing\.crt/);
  });

  test("the client library's generated API classes work over mTLS through makeApiClient (the stock client cannot under Bun)", async () => {
    api = await mtlsServer();
    const { CoreV1Api } = await import("@kubernetes/client-node");
    const right = await createKubeFetch({ mode: "edge", server: api.url, tls: { caFile: pki.ca.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile }, contentType: "", reason: "" });
    const core = await makeApiClient(right, CoreV1Api);
    const list = await core.listServiceForAllNamespaces();
    expect(list.items.map((s) => s.metadata?.name)).toEqual(["web"]);
    expect(api.requests.at(-1)?.path).toBe("/api/v1/services");
    right.close();

    const wrong = await createKubeFetch({ mode: "edge", server: api.url, tls: { caFile: pki.wrongCa.file, certFile: pki.client.certFile, keyFile: pki.client.keyFile }, contentType: "", reason: "" });
    await expect((await makeApiClient(wrong, CoreV1Api)).listServiceForAllNamespaces()).rejects.toThrow(/certificate/i);
    wrong.close();
  });
});
