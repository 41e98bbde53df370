// The gateway's Kubernetes source: TLS Secrets watched with a field selector (no other Secret
// reaches the gateway), followed live, and never written to the offline snapshot.

import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GATEWAY_KINDS, SNAPSHOT_FILE } from "../../src/control/kube/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { makeSource, removeDir, waitFor, type Harness } from "../support/apiserver/harness.ts";

let api: StandInApiServer | undefined;
let h: Harness | undefined;

afterEach(async () => {
  await h?.source.stop();
  await api?.stop();
  if (h) removeDir(h.stateDir);
  api = h = undefined;
});

const secret = (name: string, type: string, crt: string) => ({
  metadata: { name, namespace: "default" },
  type,
  data: { "tls.crt": Buffer.from(crt).toString("base64"), "tls.key": Buffer.from("key").toString("base64") },
});

describe("kubernetes source for the gateway", () => {
  test("watches kubernetes.io/tls Secrets only, follows changes, keeps them out of the snapshot", async () => {
    api = await startStandInApiServer();
    api.add("Service", fx.service("default", "web", "10.96.0.10"));
    api.add("Secret", secret("web-tls", "kubernetes.io/tls", "v1"));
    api.add("Secret", secret("db-password", "Opaque", "secret"));
    h = makeSource(api.url, { kinds: GATEWAY_KINDS });
    await h.source.start();
    expect([...h.store.snapshot().Secret.keys()]).toEqual(["default/web-tls"]);
    expect(api.requests.some((r) => r.path === "/api/v1/secrets" && r.query.fieldSelector === "type=kubernetes.io/tls")).toBe(true);
    await waitFor("secret watch", () => api!.requests.some((r) => r.path === "/api/v1/secrets" && r.query.watch === "true" && r.query.fieldSelector === "type=kubernetes.io/tls"));

    api.update("Secret", secret("web-tls", "kubernetes.io/tls", "v2"));
    api.add("Secret", secret("other", "Opaque", "x"));
    await waitFor("rotated certificate", () => Buffer.from(h!.store.snapshot().Secret.get("default/web-tls")?.data?.["tls.crt"] ?? "", "base64").toString() === "v2");
    expect(h.store.snapshot().Secret.has("default/other")).toBe(false);

    await waitFor("snapshot written", () => {
      try {
        return JSON.parse(readFileSync(join(h!.stateDir, SNAPSHOT_FILE), "utf8")).objects.Service?.length === 1;
      } catch {
        return false;
      }
    });
    const snap = readFileSync(join(h.stateDir, SNAPSHOT_FILE), "utf8");
    expect(snap).not.toContain("web-tls");
    expect(JSON.parse(snap).objects.Secret).toBeUndefined();
  });

  test("the agent's default kinds do not ask for Secrets", async () => {
    api = await startStandInApiServer();
    h = makeSource(api.url);
    await h.source.start();
    expect(api.requests.some((r) => r.path.includes("secrets"))).toBe(false);
  });
});
