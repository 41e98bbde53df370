// deploy/ rendered by the real `kubectl kustomize` and checked as a cluster would read it: the
// objects reference each other correctly, the DaemonSet mounts what the config file names, the
// probes reach the admin address, placement matches KubeEdge's node labels and taints, and each
// overlay or component changes only what it claims to.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadConfig, type EdgeMeshAgentConfig } from "../../src/control/index.ts";
import { capabilityNeeds } from "../../src/main/agent.ts";
import { gatewayRefusals, gatewayView } from "../../src/main/gateway-config.ts";
import { copyDeploy, find, nodeAffinityAdmits, tolerates, type DeployCopy, type K8sObject, REPO, TEST_PSK } from "../support/deploy.ts";

const pkg = await Bun.file(`${REPO}/package.json`).json();
const EDGE_NODE = { "kubernetes.io/hostname": "edge-1", "node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "" };
const CLOUD_NODE = { "kubernetes.io/hostname": "master", "node-role.kubernetes.io/control-plane": "" };
/** An edge node the operator labelled for the gateway (README, The edge gateway). */
const GATEWAY_NODE = { ...EDGE_NODE, "kubernetes.io/hostname": "edge-gw", "edgemesh.kubeedge.io/gateway": "" };
/** The pod's environment on each kind of node: the kubelet injects KUBERNETES_PORT, edged does not. */
const EDGE_ENV = { NODE_NAME: "edge-1", NAMESPACE: "kubeedge" };
const CLOUD_ENV = { NODE_NAME: "master", NAMESPACE: "kubeedge", KUBERNETES_PORT: "tcp://10.96.0.1:443", KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

let copy: DeployCopy;
const rendered = new Map<string, K8sObject[]>();
beforeAll(async () => {
  copy = copyDeploy();
  // The operator's overlay from the README (Deploy to a cluster, step 4), beside deploy/, as
  // written there (compat) and with its commented component line and identityMode: secure on.
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const block = /\n( *)```yaml\n\1# my-cluster\/kustomization\.yaml\n([\s\S]*?)\n\1```/.exec(readme);
  if (!block) throw new Error("README: the my-cluster/kustomization.yaml example is gone");
  const overlay = block[2]!.split("\n").map((l) => l.slice(block[1]!.length)).join("\n") + "\n";
  const baseConfig = readFileSync(join(REPO, "deploy/base/edgemesh-agent.yaml"), "utf8");
  const mine = baseConfig.replace("    relayNodes: []\n", "    relayNodes:\n    - nodeName: master\n      advertiseAddress: [203.0.113.10]\n");
  copy.write("../my-cluster/kustomization.yaml", overlay);
  copy.write("../my-cluster/edgemesh-agent.yaml", mine);
  copy.write("../my-secure/kustomization.yaml", overlay.replace("# components:", "components:"));
  copy.write("../my-secure/edgemesh-agent.yaml", mine.replace("    relayNodes:\n", "    identityMode: secure\n    relayNodes:\n"));
  copy.write("edge-secure-role/kustomization.yaml", "resources: [../overlays/edge]\ncomponents: [../components/secure-identity]\n");
  copy.write("edge-cni/kustomization.yaml", "resources: [../overlays/edge]\ncomponents: [../components/edge-cni]\n");
  // The gateway: the component on the edge overlay, the standalone overlay (its own PSK file),
  // and the README's lines for the operator's overlay (Deploy to a cluster, The edge gateway).
  copy.write("edge-gateway/kustomization.yaml", "resources: [../overlays/edge]\ncomponents: [../components/gateway]\n");
  copy.write("overlays/gateway/psk", TEST_PSK);
  const gwBlock = (title: string) => {
    const b = new RegExp(`\\n( *)\`\`\`yaml\\n\\1# ${title.replaceAll("/", "\\/")}\\n([\\s\\S]*?)\\n\\1\`\`\``).exec(readme);
    if (!b) throw new Error(`README: the ${title} example is gone`);
    return b[2]!.split("\n").map((l) => l.slice(b[1]!.length)).join("\n") + "\n";
  };
  copy.write("../my-gateway/kustomization.yaml", overlay + gwBlock("my-cluster/kustomization.yaml, for the gateway add"));
  copy.write("../my-gateway/edgemesh-agent.yaml", mine);
  copy.write("../my-gateway/gateway/kustomization.yaml", gwBlock("my-cluster/gateway/kustomization.yaml"));
  copy.write("../my-gateway/gateway/edgemesh-gateway.yaml", readFileSync(join(REPO, "deploy/components/gateway/edgemesh-gateway.yaml"), "utf8").replace('nic: "*"', 'nic: "eth1"'));
  // kubectl kustomize processes in parallel: eleven renders one after another outgrew the hook's
  // default timeout on the shared 2-core machine.
  const paths = ["base", "overlays/edge", "overlays/cloud", "overlays/secure", "../my-cluster", "../my-secure", "edge-secure-role", "edge-cni", "edge-gateway", "overlays/gateway", "../my-gateway"];
  const objects = await Promise.all(paths.map((path) => copy.render(path)));
  paths.forEach((path, i) => rendered.set(path, objects[i]!));
}, 60_000);
afterAll(() => copy?.remove());

const objs = (path: string) => rendered.get(path)!;
const daemonSet = (path: string) => find(objs(path), "DaemonSet", "edgemesh-agent");
const container = (path: string) => daemonSet(path).spec.template.spec.containers[0];
function agentConfig(path: string, env: Record<string, string>): EdgeMeshAgentConfig {
  const cm = find(objs(path), "ConfigMap");
  const notices: string[] = [];
  const config = loadConfig({ text: cm.data["edgemesh-agent.yaml"], env, notice: (m) => notices.push(m) });
  expect(notices).toEqual([]);
  return config;
}

describe("deploy/base", () => {
  test("every namespaced object is in kubeedge, and the binding gives the role to the DaemonSet's service account", () => {
    const all = objs("base");
    expect(all.map((o) => o.kind).sort()).toEqual(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Namespace", "Secret", "ServiceAccount"]);
    expect(find(all, "Namespace").metadata.name).toBe("kubeedge");
    for (const o of all.filter((o) => !["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(o.kind))) expect(o.metadata.namespace).toBe("kubeedge");
    const sa = find(all, "ServiceAccount");
    const binding = find(all, "ClusterRoleBinding");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: find(all, "ClusterRole").metadata.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    expect(daemonSet("base").spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
  });

  test("the PSK Secret is generated from the operator's file, and the config reads it where the DaemonSet mounts it", () => {
    const secret = find(objs("base"), "Secret");
    expect(Buffer.from(secret.data.psk, "base64").toString()).toBe(TEST_PSK);
    const spec = daemonSet("base").spec.template.spec;
    const volume = spec.volumes.find((v: any) => v.secret);
    expect(volume.secret.secretName).toBe(secret.metadata.name); // the generated name, hash included
    const mount = container("base").volumeMounts.find((m: any) => m.name === volume.name);
    const config = agentConfig("base", EDGE_ENV);
    expect(config.modules.edgeTunnel.psk.enable).toBe(true);
    expect(config.modules.edgeTunnel.psk.path).toBe(`${mount.mountPath}/psk`);
  });

  test("the agent's --config file is the ConfigMap's key, mounted where the argument points", () => {
    const args: string[] = container("base").args;
    expect(args.slice(0, 2)).toEqual(["agent", "--config"]);
    const file = args[2]!;
    const cm = find(objs("base"), "ConfigMap");
    const volume = daemonSet("base").spec.template.spec.volumes.find((v: any) => v.configMap);
    expect(volume.configMap.name).toBe(cm.metadata.name);
    const mount = container("base").volumeMounts.find((m: any) => m.name === volume.name);
    expect(dirname(file)).toBe(mount.mountPath);
    expect(Object.keys(cm.data)).toEqual([file.slice(file.lastIndexOf("/") + 1)]);
  });

  test("the config runs proxy and tunnel everywhere, DNS at the edge only (EdgeMesh's per-node default)", () => {
    const edge = agentConfig("base", EDGE_ENV);
    const cloud = agentConfig("base", CLOUD_ENV);
    for (const c of [edge, cloud]) {
      expect(c.modules.edgeProxy.enable).toBe(true);
      expect(c.modules.edgeTunnel.enable).toBe(true);
      expect(c.modules.edgeTunnel.identityMode).toBe("compat");
    }
    expect(edge.kubeAPIConfig.mode).toBe("EdgeMode");
    expect(edge.modules.edgeDNS.enable).toBe(true);
    expect(cloud.kubeAPIConfig.mode).toBe("CloudMode");
    expect(cloud.modules.edgeDNS.enable).toBe(false);
  });

  test("the stateDir and the xtables lock are host paths, so the snapshot survives restarts and iptables users serialise", () => {
    const spec = daemonSet("base").spec.template.spec;
    const mounts = container("base").volumeMounts as any[];
    const hostPathAt = (mountPath: string) => {
      const m = mounts.find((m) => m.mountPath === mountPath);
      expect(m).toBeDefined();
      return spec.volumes.find((v: any) => v.name === m.name).hostPath;
    };
    const stateDir = agentConfig("base", EDGE_ENV).commonConfig.stateDir;
    expect(hostPathAt(stateDir)).toEqual({ path: stateDir, type: "DirectoryOrCreate" });
    expect(hostPathAt("/run/xtables.lock")).toEqual({ path: "/run/xtables.lock", type: "FileOrCreate" });
    // Every mount names a volume that exists.
    for (const m of mounts) expect(spec.volumes.some((v: any) => v.name === m.name)).toBe(true);
  });

  test("probes call the admin endpoint on loopback, where it listens, on its port", () => {
    const [host, port] = agentConfig("base", EDGE_ENV).commonConfig.adminAddress.split(":");
    expect(host).toBe("127.0.0.1");
    for (const probe of [container("base").livenessProbe, container("base").readinessProbe]) {
      expect(probe.httpGet.host).toBe("127.0.0.1");
      expect(String(probe.httpGet.port)).toBe(port!);
    }
    expect(container("base").livenessProbe.httpGet.path).toBe("/healthz");
    expect(container("base").readinessProbe.httpGet.path).toBe("/readyz");
  });

  test("hostNetwork, the node's own resolvers, the downward API, node-critical priority", () => {
    const spec = daemonSet("base").spec.template.spec;
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe("Default");
    expect(spec.priorityClassName).toBe("system-node-critical");
    const env = Object.fromEntries((container("base").env as any[]).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
    expect(env).toEqual({ NODE_NAME: "spec.nodeName", NAMESPACE: "metadata.namespace" });
  });

  test("capabilities instead of privileged: NET_ADMIN, NET_RAW, NET_BIND_SERVICE and nothing else", () => {
    const sc = container("base").securityContext;
    expect(sc.privileged).toBe(false);
    expect(sc.capabilities.drop).toEqual(["ALL"]);
    expect([...sc.capabilities.add].sort()).toEqual(["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"]);
  });

  test("runs on KubeEdge edge nodes and on cloud nodes, through the edge taint and while cut off", () => {
    const spec = daemonSet("base").spec.template.spec;
    expect(nodeAffinityAdmits(spec, EDGE_NODE)).toBe(true);
    expect(nodeAffinityAdmits(spec, CLOUD_NODE)).toBe(true);
    for (const taint of [
      { key: "node-role.kubernetes.io/edge", effect: "NoSchedule" },
      { key: "node.kubernetes.io/unreachable", effect: "NoExecute" },
      { key: "node.kubernetes.io/not-ready", effect: "NoExecute" },
      { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" },
    ] as const) {
      expect(tolerates(spec.tolerations, taint)).toBe(true);
    }
  });

  test("an update never runs two agents on one node, and the selector is EdgeMesh's (so apply takes an EdgeMesh install over)", () => {
    const ds = daemonSet("base");
    expect(ds.spec.updateStrategy).toEqual({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    expect(ds.spec.selector.matchLabels).toEqual({ "k8s-app": "kubeedge", kubeedge: "edgemesh-agent" });
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[k]).toBe(v);
  });

  test("the image tag is the package version; memory is requested and limited, the limit above the request", () => {
    expect(container("base").image).toBe(`edgemesh-bun:${pkg.version}`);
    const mib = (q: string) => Number(q.replace(/Mi$/, ""));
    const { requests, limits } = container("base").resources;
    expect(mib(requests.memory)).toBeGreaterThanOrEqual(128);
    expect(mib(limits.memory)).toBeGreaterThan(mib(requests.memory));
    expect(requests.cpu).toBeDefined();
  });
});

describe("overlays and components", () => {
  test("edge and cloud place the agent on disjoint node sets and change nothing else", () => {
    expect(nodeAffinityAdmits(daemonSet("overlays/edge").spec.template.spec, EDGE_NODE)).toBe(true);
    expect(nodeAffinityAdmits(daemonSet("overlays/edge").spec.template.spec, CLOUD_NODE)).toBe(false);
    expect(nodeAffinityAdmits(daemonSet("overlays/cloud").spec.template.spec, EDGE_NODE)).toBe(false);
    expect(nodeAffinityAdmits(daemonSet("overlays/cloud").spec.template.spec, CLOUD_NODE)).toBe(true);
    const withoutAffinity = (path: string) => {
      const ds = structuredClone(daemonSet(path));
      delete ds.spec.template.spec.affinity;
      return [...objs(path).filter((o) => o.kind !== "DaemonSet"), ds];
    };
    expect(withoutAffinity("overlays/edge")).toEqual(withoutAffinity("base"));
    expect(withoutAffinity("overlays/cloud")).toEqual(withoutAffinity("base"));
    // Same DaemonSet name everywhere: applying one overlay replaces another, never doubles it.
    expect(daemonSet("overlays/edge").metadata.name).toBe(daemonSet("overlays/cloud").metadata.name);
  });

  test("DNS is off on the cloud overlay's nodes and on at the edge overlay's, as EdgeMesh decides it", () => {
    expect(agentConfig("overlays/cloud", CLOUD_ENV).modules.edgeDNS.enable).toBe(false);
    expect(agentConfig("overlays/edge", EDGE_ENV).modules.edgeDNS.enable).toBe(true);
  });

  test("secure identity adds patch nodes to the role and identityMode secure to the config, nothing more", () => {
    const rules = (path: string) => find(objs(path), "ClusterRole").rules as any[];
    const patchNodes = (r: any) => r.verbs.includes("patch") && r.resources.includes("nodes") && r.apiGroups.includes("");
    expect(rules("base").some(patchNodes)).toBe(false);
    expect(rules("overlays/secure").filter(patchNodes).length).toBe(1);
    expect(rules("overlays/secure").filter((r) => !patchNodes(r))).toEqual(rules("base"));
    const secure = agentConfig("overlays/secure", EDGE_ENV);
    const base = agentConfig("base", EDGE_ENV);
    expect(secure.modules.edgeTunnel.identityMode).toBe("secure");
    expect({ ...secure, modules: { ...secure.modules, edgeTunnel: { ...secure.modules.edgeTunnel, identityMode: "compat" } } }).toEqual(base);
    // The config change rolls the DaemonSet: the generated name differs and the pods mount it.
    const cm = find(objs("overlays/secure"), "ConfigMap").metadata.name;
    expect(cm).not.toBe(find(objs("base"), "ConfigMap").metadata.name);
    expect(daemonSet("overlays/secure").spec.template.spec.volumes.some((v: any) => v.configMap?.name === cm)).toBe(true);
  });

  test("the component alone adds patch nodes to the role and changes nothing else", () => {
    const role = (path: string) => find(objs(path), "ClusterRole");
    const withRole = objs("edge-secure-role").filter((o) => o.kind !== "ClusterRole");
    expect(withRole).toEqual(objs("overlays/edge").filter((o) => o.kind !== "ClusterRole"));
    expect(role("edge-secure-role").rules).toEqual(role("overlays/secure").rules);
  });

  test("edge-cni mounts the host's /dev/net/tun as a char device, changes nothing else, and the caps cover the agent with CNI on", () => {
    const ds = daemonSet("edge-cni");
    const mount = (ds.spec.template.spec.containers[0].volumeMounts as any[]).find((m) => m.mountPath === "/dev/net/tun");
    expect(mount).toBeDefined();
    expect(ds.spec.template.spec.volumes.find((v: any) => v.name === mount.name).hostPath).toEqual({ path: "/dev/net/tun", type: "CharDevice" });
    const without = structuredClone(ds);
    const spec = without.spec.template.spec;
    spec.volumes = spec.volumes.filter((v: any) => v.name !== mount.name);
    spec.containers[0].volumeMounts = spec.containers[0].volumeMounts.filter((m: any) => m.name !== mount.name);
    expect([...objs("edge-cni").filter((o) => o.kind !== "DaemonSet"), without]).toEqual([...objs("overlays/edge").filter((o) => o.kind !== "DaemonSet"), daemonSet("overlays/edge")]);
    // The agent's own start check with the module on asks for no capability the pod lacks.
    const text = find(objs("edge-cni"), "ConfigMap").data["edgemesh-agent.yaml"].replace("\nmodules:\n", "\nmodules:\n  edgeCNI:\n    enable: true\n");
    const config = loadConfig({ text, env: EDGE_ENV });
    expect(config.modules.edgeCNI.enable).toBe(true);
    const caps: string[] = ds.spec.template.spec.containers[0].securityContext.capabilities.add;
    for (const need of capabilityNeeds(config, 1024)) expect(caps).toContain(need.cap);
  });

  test("the README's operator overlay renders: edge nodes, the registry's image, the operator's config", () => {
    const ds = daemonSet("../my-cluster");
    expect(nodeAffinityAdmits(ds.spec.template.spec, CLOUD_NODE)).toBe(false);
    expect(ds.spec.template.spec.containers[0].image).toBe("REGISTRY/edgemesh-bun:0.1.0");
    const config = agentConfig("../my-cluster", EDGE_ENV);
    expect(config.modules.edgeTunnel.relayNodes).toEqual([{ nodeName: "master", advertiseAddress: ["203.0.113.10"] }]);
    expect(config.modules.edgeTunnel.identityMode).toBe("compat");
    expect((find(objs("../my-cluster"), "ClusterRole").rules as any[]).some((r) => r.verbs.includes("patch"))).toBe(false);
    // Its commented component line and identityMode in the operator's file give secure mode.
    expect(agentConfig("../my-secure", EDGE_ENV).modules.edgeTunnel.identityMode).toBe("secure");
    expect(agentConfig("../my-secure", EDGE_ENV).modules.edgeTunnel.relayNodes.length).toBe(1);
    expect((find(objs("../my-secure"), "ClusterRole").rules as any[]).some((r) => r.verbs.includes("patch"))).toBe(true);
  });

  test("without the PSK file the render fails and names the file", async () => {
    const bare = copyDeploy({ psk: false });
    try {
      await expect(bare.render("base")).rejects.toThrow(/psk/);
    } finally {
      bare.remove();
    }
  });
});

describe("the edge gateway (components/gateway, overlays/gateway)", () => {
  const GW = "edge-gateway";
  const deployment = (path: string) => find(objs(path), "Deployment", "edgemesh-gateway");
  const gwContainer = (path: string) => deployment(path).spec.template.spec.containers[0];
  const gwObjects = (path: string) => objs(path).filter((o) => o.metadata.name.startsWith("edgemesh-gateway"));
  function gatewayConfig(path: string, env: Record<string, string> = { NODE_NAME: "edge-gw", NAMESPACE: "kubeedge" }) {
    const cm = objs(path).find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgemesh-gateway-cfg-"))!;
    expect(Object.keys(cm.data)).toEqual(["edgemesh-gateway.yaml"]);
    const notices: string[] = [];
    const config = loadConfig({ text: cm.data["edgemesh-gateway.yaml"], env, notice: (m) => notices.push(m) });
    expect(notices).toEqual([]);
    return config;
  }

  test("the component adds the gateway's own five objects and leaves every object of the overlay as it was", () => {
    const added = objs(GW).filter((o) => !objs("overlays/edge").some((e) => e.kind === o.kind && e.metadata.name === o.metadata.name));
    expect(added.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort()).toEqual([
      "ClusterRole/edgemesh-gateway", "ClusterRoleBinding/edgemesh-gateway", "ConfigMap/edgemesh-gateway-cfg", "Deployment/edgemesh-gateway", "ServiceAccount/edgemesh-gateway",
    ]);
    expect(objs(GW).filter((o) => !added.includes(o))).toEqual(objs("overlays/edge"));
    for (const o of added) if (!["ClusterRole", "ClusterRoleBinding"].includes(o.kind)) expect(o.metadata.namespace).toBe("kubeedge");
    for (const o of added) expect(o.metadata.labels?.["app.kubernetes.io/part-of"]).toBe("edgemesh");
  });

  test("its own service account and role: the binding gives the gateway's role to the Deployment's account, not the agent's", () => {
    const sa = find(objs(GW), "ServiceAccount", "edgemesh-gateway");
    const binding = find(objs(GW), "ClusterRoleBinding", "edgemesh-gateway");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edgemesh-gateway" });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "edgemesh-gateway", namespace: sa.metadata.namespace }]);
    expect(deployment(GW).spec.template.spec.serviceAccountName).toBe("edgemesh-gateway");
    // Read-only: list and watch, and Secrets only in the gateway's role.
    const rules = find(objs(GW), "ClusterRole", "edgemesh-gateway").rules as any[];
    for (const r of rules) expect([...r.verbs].sort()).toEqual(["list", "watch"]);
    expect(rules.some((r) => r.resources.includes("secrets"))).toBe(true);
    expect((find(objs(GW), "ClusterRole", "edgemesh-agent").rules as any[]).some((r) => r.resources.includes("secrets"))).toBe(false);
  });

  test("the config is an EdgeMeshGateway the gateway accepts: gateway and tunnel on, compat identity", () => {
    const config = gatewayConfig(GW);
    expect(config.kind).toBe("EdgeMeshGateway");
    expect(config.apiVersion).toBe("gateway.edgemesh.config.kubeedge.io/v1alpha1");
    expect(config.modules.edgeGateway.enable).toBe(true);
    expect(config.modules.edgeTunnel.enable).toBe(true);
    expect(gatewayRefusals(config)).toEqual([]);
    expect(gatewayView(config).tunnelConfig.nodeName).toBe("edge-gw-gateway");
    // --config is the ConfigMap's key where the volume is mounted.
    const args: string[] = gwContainer(GW).args;
    expect(args.slice(0, 2)).toEqual(["gateway", "--config"]);
    const volume = deployment(GW).spec.template.spec.volumes.find((v: any) => v.configMap);
    expect(volume.configMap.name).toMatch(/^edgemesh-gateway-cfg-/);
    expect(objs(GW).some((o) => o.kind === "ConfigMap" && o.metadata.name === volume.configMap.name)).toBe(true);
    const mount = gwContainer(GW).volumeMounts.find((m: any) => m.name === volume.name);
    expect(args[2]).toBe(`${mount.mountPath}/edgemesh-gateway.yaml`);
  });

  test("the tunnel key is the agent's PSK Secret, mounted where the config reads it", () => {
    const secret = find(objs(GW), "Secret");
    expect(secret.metadata.name).toMatch(/^edgemesh-agent-psk-/);
    const volume = deployment(GW).spec.template.spec.volumes.find((v: any) => v.secret);
    expect(volume.secret.secretName).toBe(secret.metadata.name);
    expect(volume.secret.secretName).toBe(daemonSet(GW).spec.template.spec.volumes.find((v: any) => v.secret).secret.secretName);
    const mount = gwContainer(GW).volumeMounts.find((m: any) => m.name === volume.name);
    const psk = gatewayConfig(GW).modules.edgeTunnel.psk;
    expect(psk.enable).toBe(true);
    expect(psk.path).toBe(`${mount.mountPath}/psk`);
  });

  test("probes call the admin address the gateway runs with, beside the agent's on the same node", () => {
    const gwAdmin = gatewayView(gatewayConfig(GW)).adminAddress;
    const [host, port] = gwAdmin.split(":");
    expect(host).toBe("127.0.0.1");
    for (const probe of [gwContainer(GW).livenessProbe, gwContainer(GW).readinessProbe]) {
      expect(probe.httpGet.host).toBe("127.0.0.1");
      expect(String(probe.httpGet.port)).toBe(port!);
    }
    expect(gwContainer(GW).livenessProbe.httpGet.path).toBe("/healthz");
    expect(gwContainer(GW).readinessProbe.httpGet.path).toBe("/readyz");
    // Both are host-network pods on a gateway node: their admin ports and state dirs must differ.
    const agent = agentConfig("overlays/edge", EDGE_ENV);
    expect(gwAdmin).not.toBe(agent.commonConfig.adminAddress);
    expect(gatewayConfig(GW).commonConfig.stateDir).not.toBe(agent.commonConfig.stateDir);
  });

  test("hostNetwork, NODE_NAME from the downward API, the state dir a host path", () => {
    const spec = deployment(GW).spec.template.spec;
    expect(spec.hostNetwork).toBe(true);
    const env = Object.fromEntries((gwContainer(GW).env as any[]).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
    expect(env.NODE_NAME).toBe("spec.nodeName");
    const stateDir = gatewayConfig(GW).commonConfig.stateDir;
    const m = (gwContainer(GW).volumeMounts as any[]).find((m) => m.mountPath === stateDir);
    expect(spec.volumes.find((v: any) => v.name === m.name).hostPath).toEqual({ path: stateDir, type: "DirectoryOrCreate" });
    for (const mount of gwContainer(GW).volumeMounts) expect(spec.volumes.some((v: any) => v.name === mount.name)).toBe(true);
  });

  test("not privileged, every capability dropped but NET_BIND_SERVICE (ports 80/443); no NET_ADMIN: no iptables, no device", () => {
    const sc = gwContainer(GW).securityContext;
    expect(sc.privileged).toBe(false);
    expect(sc.capabilities.drop).toEqual(["ALL"]);
    expect(sc.capabilities.add).toEqual(["NET_BIND_SERVICE"]);
  });

  test("placement: labelled gateway nodes only, through the edge taint and while cut off; one pod at a time", () => {
    const spec = deployment(GW).spec.template.spec;
    expect(nodeAffinityAdmits(spec, GATEWAY_NODE)).toBe(true);
    expect(nodeAffinityAdmits(spec, EDGE_NODE)).toBe(false);
    expect(nodeAffinityAdmits(spec, CLOUD_NODE)).toBe(false);
    for (const taint of [{ key: "node-role.kubernetes.io/edge", effect: "NoSchedule" }, { key: "node.kubernetes.io/unreachable", effect: "NoExecute" }] as const) {
      expect(tolerates(spec.tolerations, taint)).toBe(true);
    }
    const d = deployment(GW);
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy).toEqual({ type: "Recreate" });
  });

  test("EdgeMesh's selector, which the agent's DaemonSet does not share; the image tag is the package version", () => {
    const d = deployment(GW);
    expect(d.spec.selector.matchLabels).toEqual({ "k8s-app": "kubeedge", kubeedge: "edgemesh-gateway" });
    for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) expect(d.spec.template.metadata.labels[k]).toBe(v);
    const dsLabels = daemonSet(GW).spec.template.metadata.labels;
    expect(Object.entries(d.spec.selector.matchLabels).every(([k, v]) => dsLabels[k] === v)).toBe(false);
    expect(gwContainer(GW).image).toBe(`edgemesh-bun:${pkg.version}`);
    const mib = (q: string) => Number(q.replace(/Mi$/, ""));
    const { requests, limits } = gwContainer(GW).resources;
    expect(mib(limits.memory)).toBeGreaterThan(mib(requests.memory));
  });

  test("the standalone overlay: the same gateway, its own PSK Secret from its own file, no Namespace and none of the agent's objects", () => {
    const alone = objs("overlays/gateway");
    expect(alone.map((o) => o.kind).sort()).toEqual(["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Secret", "ServiceAccount"]);
    const secret = find(alone, "Secret");
    expect(secret.metadata.name).toMatch(/^edgemesh-gateway-psk-/);
    expect(Buffer.from(secret.data.psk, "base64").toString()).toBe(TEST_PSK);
    const d = deployment("overlays/gateway");
    expect(d.spec.template.spec.volumes.find((v: any) => v.name === "psk").secret.secretName).toBe(secret.metadata.name);
    for (const o of alone) if (!["ClusterRole", "ClusterRoleBinding"].includes(o.kind)) expect(o.metadata.namespace).toBe("kubeedge");
    // Apart from the Secret's name, the objects are the component's.
    const same = (path: string) => gwObjects(path).filter((o) => o.kind !== "Secret").map((o) => {
      const c = structuredClone(o);
      if (c.kind === "Deployment") {
        c.spec.template.spec.volumes.find((v: any) => v.name === "psk").secret.secretName = "PSK";
        c.spec.template.spec.volumes.sort((a: any, b: any) => a.name.localeCompare(b.name)); // the patch reorders them
      }
      return c;
    }).sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    expect(same("overlays/gateway")).toEqual(same(GW));
  });

  test("the README's lines for the operator's overlay: the gateway with the operator's own config, the registry's image", () => {
    const d = deployment("../my-gateway");
    expect(d.spec.template.spec.containers[0].image).toBe("REGISTRY/edgemesh-bun:0.1.0");
    const config = gatewayConfig("../my-gateway");
    expect(config.modules.edgeGateway.nic).toBe("eth1");
    const cm = objs("../my-gateway").find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgemesh-gateway-cfg-"))!;
    expect(d.spec.template.spec.volumes.some((v: any) => v.configMap?.name === cm.metadata.name)).toBe(true);
    expect(cm.metadata.name).not.toBe(objs(GW).find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgemesh-gateway-cfg-"))!.metadata.name);
    // The agent side of that overlay is step 4's.
    expect(objs("../my-gateway").filter((o) => !o.metadata.name.startsWith("edgemesh-gateway"))).toEqual(objs("../my-cluster"));
  });
});
