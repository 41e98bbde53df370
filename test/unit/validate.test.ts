// `edgemesh validate` (src/main/validate.ts) and the not-built keys (src/main/unbuilt.ts): the
// printed config is the effective one and loads back to itself, refusals exit 1 naming the key,
// and every accepted-but-not-built key warns by name when the config asks for it.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/control/index.ts";
import { UNBUILT, unbuiltWarnings } from "../../src/main/unbuilt.ts";
import { runValidate } from "../../src/main/validate.ts";

const dir = mkdtempSync(join(tmpdir(), "edgemesh-validate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HEAD = "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n";
let n = 0;
const file = (text: string) => {
  const path = join(dir, `c${n++}.yaml`);
  writeFileSync(path, HEAD + text);
  return path;
};
/** EdgeMesh v1.17's shipped ConfigMap content. */
const EDGEMESH_SHIPPED = "modules:\n  edgeProxy:\n    enable: true\n  edgeTunnel:\n    enable: true\n";

function validate(path: string, opts: { json?: boolean; env?: Record<string, string>; readable?: (p: string) => string | undefined } = {}) {
  let out = "";
  let err = "";
  const code = runValidate(path, { json: opts.json, env: opts.env ?? { NODE_NAME: "n1" }, readable: opts.readable ?? (() => undefined), out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

describe("edgemesh validate", () => {
  test("prints the effective config, which loads back to the same config", () => {
    const path = file(EDGEMESH_SHIPPED);
    for (const env of [{ NODE_NAME: "n1" }, { NODE_NAME: "n1", KUBERNETES_PORT: "tcp://10.96.0.1:443" }] as Record<string, string>[]) {
      const { code, out, err } = validate(path, { env });
      expect(code).toBe(0);
      expect(err).toBe("");
      const printed = loadConfig({ text: out, env });
      expect(printed).toEqual(loadConfig({ path, env }));
    }
  });

  test("the header names the running mode and why; DNS follows it", () => {
    const path = file(EDGEMESH_SHIPPED);
    const edge = validate(path);
    expect(edge.out).toContain("# running mode EdgeMode (no KUBERNETES_PORT");
    expect(edge.out).toMatch(/edgeDNS:\n {4}enable: true/);
    const cloud = validate(path, { env: { NODE_NAME: "n1", KUBERNETES_PORT: "tcp://10.96.0.1:443" } });
    expect(cloud.out).toContain("# running mode CloudMode (KUBERNETES_PORT is set");
    expect(cloud.out).toMatch(/edgeDNS:\n {4}enable: false/);
  });

  test("--json prints the same config as JSON", () => {
    const path = file(EDGEMESH_SHIPPED);
    const { code, out } = validate(path, { json: true });
    expect(code).toBe(0);
    const { nodeName: _n, namespace: _ns, ...expected } = loadConfig({ path, env: { NODE_NAME: "n1" } });
    expect(JSON.parse(out)).toEqual(JSON.parse(JSON.stringify(expected)));
  });

  test("a config the agent would refuse exits 1, names every bad key, prints no config", () => {
    const { code, out, err } = validate(file("modules:\n  edgeDNS:\n    listenPort: 70000\n  edgeProxy:\n    enabel: true\n"));
    expect(code).toBe(1);
    expect(out).toBe("");
    expect(err).toContain("modules.edgeDNS.listenPort: expected a port number");
    expect(err).toContain("modules.edgeProxy.enabel");
  });

  test("QUIC with a PSK is refused before start, naming the key", () => {
    const { code, err } = validate(file("modules:\n  edgeTunnel:\n    enable: true\n    transport: quic\n"));
    expect(code).toBe(1);
    expect(err).toContain('modules.edgeTunnel.transport: "quic" cannot carry a PSK private network');
  });

  test("warnings: files missing here, NODE_NAME unset, keys that are not built", () => {
    const path = file("kubeAPIConfig:\n  kubeConfig: /nowhere/kubeconfig\nmodules:\n  edgeTunnel:\n    enable: true\n    enableIpfsLog: true\n");
    const { code, err } = validate(path, { env: {}, readable: (p) => (p.startsWith("/nowhere") || p === "/etc/edgemesh/psk" ? "ENOENT" : undefined) });
    expect(code).toBe(0);
    const lines = err.trim().split("\n");
    expect(lines.every((l) => l.startsWith("warning: "))).toBe(true);
    expect(lines.some((l) => l.includes("kubeAPIConfig.kubeConfig: /nowhere/kubeconfig cannot be read here (ENOENT)"))).toBe(true);
    expect(lines.some((l) => l.includes("modules.edgeTunnel.psk.path: /etc/edgemesh/psk cannot be read here"))).toBe(true);
    expect(lines.some((l) => l.includes("NODE_NAME is not set"))).toBe(true);
    expect(lines.some((l) => l.startsWith("warning: modules.edgeTunnel.enableIpfsLog: accepted for EdgeMesh compatibility but not built"))).toBe(true);
    expect(lines.length).toBe(4);
  });
});

describe("keys accepted but not built", () => {
  /** For each entry of UNBUILT, a config that asks for it (a new entry needs a line here). */
  const ASKING: Record<string, string> = {
    "commonConfig.pprofConfig.enableProfiling": "commonConfig:\n  pprofConfig:\n    enableProfiling: true\n",
    "kubeAPIConfig.qps": "kubeAPIConfig:\n  qps: 5\n",
    "kubeAPIConfig.burst": "kubeAPIConfig:\n  burst: 10\n",
    "kubeAPIConfig.deleteKubeConfig": "kubeAPIConfig:\n  deleteKubeConfig: true\n",
    "modules.edgeTunnel.enableIpfsLog": "modules:\n  edgeTunnel:\n    enableIpfsLog: true\n",
    "modules.edgeTunnel.maxCandidates": "modules:\n  edgeTunnel:\n    maxCandidates: 5\n",
    "modules.edgeTunnel.heartbeatPeriod": "modules:\n  edgeTunnel:\n    heartbeatPeriod: 30\n",
    "modules.edgeTunnel.finderPeriod": "modules:\n  edgeTunnel:\n    finderPeriod: 30\n",
    "modules.edgeGateway.enable": "modules:\n  edgeGateway:\n    enable: true\n",
  };

  test("the defaults and EdgeMesh's shipped files ask for nothing unbuilt, in either mode", () => {
    for (const env of [{}, { KUBERNETES_PORT: "tcp://10.96.0.1:443" }]) {
      expect(unbuiltWarnings(loadConfig({ env }))).toEqual([]);
      expect(unbuiltWarnings(loadConfig({ text: HEAD + EDGEMESH_SHIPPED, env }))).toEqual([]);
    }
  });

  test("built since: modules.edgeCNI.enable (with its meshCIDRConfig) warns no more", () => {
    const yaml = "modules:\n  edgeTunnel:\n    enable: true\n  edgeCNI:\n    enable: true\n    meshCIDRConfig:\n      edgeCIDR: [10.244.0.0/16]\n";
    expect(loadConfig({ text: HEAD + yaml }).modules.edgeCNI.enable).toBe(true);
    expect(unbuiltWarnings(loadConfig({ text: HEAD + yaml }))).toEqual([]);
  });

  test("each key warns by name, alone, when the config asks for it", () => {
    expect(Object.keys(ASKING).sort()).toEqual(UNBUILT.map((u) => u.key).sort());
    for (const [key, yaml] of Object.entries(ASKING)) {
      const warnings = unbuiltWarnings(loadConfig({ text: HEAD + yaml }));
      expect(warnings.length).toBe(1);
      expect(warnings[0]!.startsWith(`${key}: accepted for EdgeMesh compatibility but not built in edgemesh-bun; `)).toBe(true);
    }
  });
});
