// deploy/ rendered by the real `kubectl kustomize` and checked as a cluster would read it: the
// objects reference each other correctly, the DaemonSet mounts what the config file names, the
// probes reach the admin address, placement matches KubeEdge's node labels and taints, and each
// overlay or component changes only what it claims to.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadConfig, type EdgeMeshAgentConfig } from "../../src/control/index.ts";
import { capabilityNeeds } from "../../src/main/agent.ts";
import { copyDeploy, find, nodeAffinityAdmits, tolerates, type DeployCopy, type K8sObject, REPO, TEST_PSK } from "../support/deploy.ts";

const pkg = await Bun.file(`${REPO}/package.json`).json();
const EDGE_NODE = { "kubernetes.io/hostname": "edge-1", "node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "" };
const CLOUD_NODE = { "kubernetes.io/hostname": "master", "node-role.kubernetes.io/control-plane": "" };
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
  for (const path of ["base", "overlays/edge", "overlays/cloud", "overlays/secure", "../my-cluster", "../my-secure", "edge-secure-role", "edge-cni"]) rendered.set(path, await copy.render(path));
});
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
