import { describe, expect, test } from "bun:test";
import { ConfigError, defaultConfig, loadConfig } from "../../src/control/config/index.ts";

// The edgeCNI block as EdgeMesh's beta writes it (its Helm values agent.meshCIDRConfig.*, its
// EdgeCNIConfig JSON names), inside an otherwise shipped-style config.
const EDGEMESH_CNI = `modules:
  edgeProxy:
    enable: true
  edgeTunnel:
    enable: true
  edgeCNI:
    enable: true
    encapIP: 192.168.1.11
    tunMode: 0
    meshCIDRConfig:
      cloudCIDR: ["10.244.0.0/18"]
      edgeCIDR: ["10.244.64.0/24", "10.244.65.0/24"]
`;

function problemsOf(text: string): { path: string; message: string }[] {
  try {
    loadConfig({ text });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error("config loaded");
}

describe("modules.edgeCNI", () => {
  test("defaults: off, EdgeMesh's zero values", () => {
    expect(defaultConfig().modules.edgeCNI).toEqual({ enable: false, encapIP: "", tunMode: 0, meshCIDRConfig: { cloudCIDR: [], edgeCIDR: [] } });
  });

  test("an EdgeMesh config with the edgeCNI keys loads unchanged, every value as written", () => {
    const notices: string[] = [];
    const c = loadConfig({ text: EDGEMESH_CNI, notice: (m) => notices.push(m) });
    expect(c.modules.edgeCNI).toEqual({
      enable: true,
      encapIP: "192.168.1.11",
      tunMode: 0,
      meshCIDRConfig: { cloudCIDR: ["10.244.0.0/18"], edgeCIDR: ["10.244.64.0/24", "10.244.65.0/24"] },
    });
    expect(notices).toEqual([]);
  });

  test("encapIP may be an interface name (one EdgeMesh version reads it so)", () => {
    expect(loadConfig({ text: EDGEMESH_CNI.replace("encapIP: 192.168.1.11", "encapIP: eth0") }).modules.edgeCNI.encapIP).toBe("eth0");
  });

  test("a bad CIDR names its key path and value", () => {
    expect(problemsOf(EDGEMESH_CNI.replace('"10.244.65.0/24"', '"10.244.65.0"'))).toEqual([
      { path: "modules.edgeCNI.meshCIDRConfig.edgeCIDR[1]", message: 'expected a CIDR such as 10.244.0.0/16, got "10.244.65.0"' },
    ]);
    expect(problemsOf(EDGEMESH_CNI.replace('"10.244.0.0/18"', '"10.244.0.0/33"'))[0]!.path).toBe("modules.edgeCNI.meshCIDRConfig.cloudCIDR[0]");
  });

  test("a negative tunMode and a nonsense encapIP are refused", () => {
    const problems = problemsOf(EDGEMESH_CNI.replace("tunMode: 0", "tunMode: -1").replace("encapIP: 192.168.1.11", "encapIP: 'not an ip'"));
    expect(problems.map((p) => p.path)).toEqual(["modules.edgeCNI.encapIP", "modules.edgeCNI.tunMode"]);
  });

  test("edgeCNI without edgeTunnel is refused: the packets travel through the tunnel", () => {
    expect(problemsOf("modules:\n  edgeCNI:\n    enable: true\n")).toEqual([
      { path: "modules.edgeCNI.enable", message: "needs modules.edgeTunnel.enable true: pod packets travel through the tunnel" },
    ]);
  });

  test("a typo in a key is refused with a suggestion", () => {
    expect(problemsOf("modules:\n  edgeCNI:\n    meshCIDRConfig:\n      edgeCIRD: []\n")).toEqual([
      { path: "modules.edgeCNI.meshCIDRConfig.edgeCIRD", message: 'unknown key (did you mean "edgeCIDR"?)' },
    ]);
  });
});
