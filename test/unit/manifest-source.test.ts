import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { symlink, mkdtemp, rm, writeFile, unlink, rename, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock } from "../../src/control/clock.ts";
import { createManifestSource, parseManifest, type ManifestSource } from "../../src/control/manifest/index.ts";
import { createObjectStore, type ObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";

const SERVICE = (name: string, port = 80) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  ports:
  - name: http
    port: ${port}
`;

const SLICE = (service: string, ip: string) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${service}-1
  labels:
    kubernetes.io/service-name: ${service}
addressType: IPv4
ports:
- name: http
  port: 8080
endpoints:
- addresses: ["${ip}"]
`;

let dir: string;
let store: ObjectStore;
let source: ManifestSource | undefined;
let log: ReturnType<typeof createMemoryLogger>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "edgemesh-manifests-"));
  store = createObjectStore();
  log = createMemoryLogger();
});

afterEach(async () => {
  source?.stop();
  source = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A source whose own timers never fire: tests call rescan() to be deterministic. */
function manual(): ManifestSource {
  source = createManifestSource({ dir, store, log, clock: createManualClock(), rescanIntervalMs: 0 });
  return source;
}

const names = (kind: "Service" | "EndpointSlice" | "DestinationRule" | "Node" = "Service") =>
  [...store.snapshot()[kind].keys()].sort();

describe("manifest source", () => {
  test("initial load: yaml, yml and json files, multi-document YAML, namespace defaulted", async () => {
    await writeFile(join(dir, "a.yaml"), SERVICE("web") + "---\n" + SLICE("web", "10.0.0.1") + "---\n");
    await writeFile(join(dir, "b.yml"), SERVICE("api"));
    await writeFile(
      join(dir, "c.json"),
      JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name: "db", namespace: "data" }, spec: {} }),
    );
    await writeFile(join(dir, "notes.txt"), "kind: Service\nmetadata: {name: ignored}\n");
    await writeFile(join(dir, ".#a.yaml"), "garbage: [");
    await manual().start();
    expect(names()).toEqual(["data/db", "default/api", "default/web"]);
    expect(names("EndpointSlice")).toEqual(["default/web-1"]);
    expect(store.snapshot().Service.get("default/web")!.metadata.namespace).toBe("default");
    expect(source!.errors).toEqual([]);
  });

  test("List and <Kind>List documents are expanded; unknown kinds are ignored and counted", async () => {
    await writeFile(
      join(dir, "list.yaml"),
      `apiVersion: v1
kind: List
items:
- kind: Service
  metadata: {name: one}
- kind: Deployment
  metadata: {name: app}
- kind: ConfigMap
  metadata: {name: cfg}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRuleList
items:
- kind: DestinationRule
  apiVersion: networking.istio.io/v1beta1
  metadata: {name: one}
  spec: {trafficPolicy: {loadBalancer: {simple: RANDOM}}}
`,
    );
    await manual().start();
    expect(names()).toEqual(["default/one"]);
    expect(names("DestinationRule")).toEqual(["default/one"]);
    expect(source!.ignored).toBe(2);
  });

  test("edits, new files and deleted files take effect on the next scan", async () => {
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 80));
    const s = manual();
    await s.start();
    const r0 = store.revision;
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 8080));
    await writeFile(join(dir, "api.yaml"), SERVICE("api"));
    await s.rescan();
    expect(store.revision).toBe(r0 + 1); // one atomic replace for the whole folder
    expect(store.snapshot().Service.get("default/web")!.spec.ports[0].port).toBe(8080);
    expect(names()).toEqual(["default/api", "default/web"]);
    await unlink(join(dir, "web.yaml"));
    await s.rescan();
    expect(names()).toEqual(["default/api"]);
  });

  test("a rescan that finds nothing new leaves the store untouched", async () => {
    await writeFile(join(dir, "web.yaml"), SERVICE("web"));
    const s = manual();
    await s.start();
    const r0 = store.revision;
    await s.rescan();
    await s.rescan();
    expect(store.revision).toBe(r0);
  });

  test("a malformed edit is reported with file and line and the file's last good content stays", async () => {
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 80));
    await writeFile(join(dir, "api.yaml"), SERVICE("api"));
    const s = manual();
    await s.start();
    // Half-saved edit: a YAML syntax error on line 4.
    await writeFile(join(dir, "web.yaml"), "apiVersion: v1\nkind: Service\nmetadata:\n  name: [web\nspec: {}\n");
    await writeFile(join(dir, "api.yaml"), SERVICE("api", 9090));
    await s.rescan();
    expect(s.errors.length).toBe(1);
    expect(s.errors[0]!.file).toBe(join(dir, "web.yaml"));
    expect(s.errors[0]!.line).toBeGreaterThanOrEqual(4);
    expect(s.errors[0]!.reason.length).toBeGreaterThan(0);
    expect(store.snapshot().Service.get("default/web")!.spec.ports[0].port).toBe(80);
    expect(store.snapshot().Service.get("default/api")!.spec.ports[0].port).toBe(9090);
    // The same broken text is not reported again on later scans.
    await s.rescan();
    expect(log.lines.filter((l) => l.includes("manifest ignored")).length).toBe(1);
    // Fixing the file clears the error and applies the new content.
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 81));
    await s.rescan();
    expect(s.errors).toEqual([]);
    expect(store.snapshot().Service.get("default/web")!.spec.ports[0].port).toBe(81);
  });

  test("an object without kind or name is an error pointing at its document's line", async () => {
    await writeFile(join(dir, "a.yaml"), SERVICE("first") + "---\n# the next one has no name\nkind: Service\nmetadata:\n  labels: {}\n");
    await writeFile(join(dir, "b.json"), '{\n  "metadata": {"name": "x"}\n}\n');
    await writeFile(join(dir, "c.json"), '{\n  "kind": "Service",\n  "metadata": {"name": "x" "namespace": "y"}\n}\n');
    const s = manual();
    await s.start();
    const byFile = Object.fromEntries(s.errors.map((e) => [e.file.split("/").pop(), e]));
    expect(byFile["a.yaml"]).toMatchObject({ line: 11, reason: "Service has no metadata.name" });
    expect(byFile["b.json"]).toMatchObject({ line: 1, reason: "object has no kind" });
    expect(byFile["c.json"]!.line).toBe(3);
    expect(names()).toEqual([]); // a file that never parsed contributes nothing
  });

  test("an unreadable file is reported and keeps its last good content", async () => {
    await writeFile(join(dir, "web.yaml"), SERVICE("web"));
    const s = manual();
    await s.start();
    // A symlink to itself fails to read with ELOOP, even for root.
    await unlink(join(dir, "web.yaml"));
    await symlink("web.yaml", join(dir, "web.yaml"));
    await s.rescan();
    expect(s.errors.length).toBe(1);
    expect(s.errors[0]!.reason).toContain("cannot read");
    expect(names()).toEqual(["default/web"]);
    // Readable again with the very same text: the error clears.
    await unlink(join(dir, "web.yaml"));
    await writeFile(join(dir, "web.yaml"), SERVICE("web"));
    await s.rescan();
    expect(s.errors).toEqual([]);
    expect(names()).toEqual(["default/web"]);
  });

  test("an object defined in two files comes from the later file name, whatever the scan order", async () => {
    await writeFile(join(dir, "b.yaml"), SERVICE("web", 82));
    const s = manual();
    await s.start();
    await writeFile(join(dir, "a.yaml"), SERVICE("web", 81));
    await s.rescan();
    expect(store.snapshot().Service.get("default/web")!.spec.ports[0].port).toBe(82);
    expect(log.lines.some((l) => l.includes("defined twice"))).toBe(true);
  });

  test("start rejects when the folder does not exist", async () => {
    source = createManifestSource({ dir: join(dir, "missing"), store, log, clock: createManualClock() });
    await expect(source.start()).rejects.toThrow();
  });

  test("the folder watcher applies an edit, a new file and a deletion without a rescan call", async () => {
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 80));
    source = createManifestSource({ dir, store, log, debounceMs: 20, rescanIntervalMs: 0 });
    await source.start();
    const waitFor = async (check: () => boolean) => {
      const deadline = Date.now() + 3_000;
      while (!check() && Date.now() < deadline) await Bun.sleep(10);
      return check();
    };
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 8080));
    expect(await waitFor(() => store.snapshot().Service.get("default/web")?.spec.ports[0].port === 8080)).toBe(true);
    // Editors often write a temp file and rename it over the original.
    await writeFile(join(dir, "api.yaml.tmp"), SERVICE("api"));
    await rename(join(dir, "api.yaml.tmp"), join(dir, "api.yaml"));
    expect(await waitFor(() => store.snapshot().Service.has("default/api"))).toBe(true);
    await unlink(join(dir, "web.yaml"));
    expect(await waitFor(() => !store.snapshot().Service.has("default/web"))).toBe(true);
  });

  test("the periodic rescan catches changes the watcher did not report", async () => {
    await mkdir(join(dir, "sub"));
    await writeFile(join(dir, "web.yaml"), SERVICE("web", 80));
    const clock = createManualClock();
    source = createManifestSource({ dir, store, log, clock, rescanIntervalMs: 1_000 });
    await source.start();
    await writeFile(join(dir, "api.yaml"), SERVICE("api"));
    // The manual clock never fires the debounce, so only the periodic rescan can see this.
    clock.advance(1_000);
    await source.rescan(); // joins the scan the timer started
    expect(names()).toEqual(["default/api", "default/web"]);
  });
});

test("a folder deleted and recreated is watched again after the next periodic rescan", async () => {
  await writeFile(join(dir, "web.yaml"), SERVICE("web", 80));
  source = createManifestSource({ dir, store, log, debounceMs: 20, rescanIntervalMs: 100 });
  await source.start();
  const waitFor = async (check: () => boolean) => {
    const deadline = Date.now() + 3_000;
    while (!check() && Date.now() < deadline) await Bun.sleep(10);
    return check();
  };
  await rm(dir, { recursive: true, force: true });
  await Bun.sleep(150); // a periodic rescan fails meanwhile: the last state stays
  expect(store.snapshot().Service.has("default/web")).toBe(true);
  await mkdir(dir);
  await writeFile(join(dir, "web.yaml"), SERVICE("web", 8081));
  expect(await waitFor(() => store.snapshot().Service.get("default/web")?.spec.ports[0].port === 8081)).toBe(true);
  expect(log.lines.filter((l) => l.includes("scan failed")).length).toBe(1);
});

describe("parseManifest", () => {
  test("empty documents and document end markers are fine", () => {
    const r = parseManifest("x.yaml", "---\n---\nkind: Node\nmetadata: {name: n1}\n...\n");
    expect(r.ok && r.objects.map((o) => o.object.metadata)).toEqual([{ name: "n1" }]);
  });

  test("a List item without a name points at the item's line", () => {
    const r = parseManifest(
      "x.yaml",
      "kind: List\nitems:\n- kind: Service\n  metadata: {name: a}\n- kind: EndpointSlice\n  metadata:\n    namespace: x\n",
    );
    expect(r).toEqual({
      ok: false,
      error: {
        file: "x.yaml",
        line: 5,
        reason: "EndpointSlice has no metadata.name",
        message: "x.yaml:5: EndpointSlice has no metadata.name",
      },
    });
  });

  test("a document that is not an object is an error", () => {
    const r = parseManifest("x.yaml", "- a\n- b\n");
    expect(r.ok).toBe(false);
  });
});
