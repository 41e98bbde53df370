// E2E harness: a test bed of node namespaces, each running a real `edgemesh agent` (the
// documented command) with NODE_NAME and a manifest folder, pods running test apps, and helpers
// to write Services/EndpointSlices/DestinationRules into the manifest folder.

import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createTestbed, type Pod, type Testbed, type TestNode, type TopologySpec } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import type { PeerView } from "../../src/admin/peers.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const MAIN = join(ROOT, "src/main/index.ts");
export const APP = join(ROOT, "test/support/apps/server.ts");
export const CLIENT = join(ROOT, "test/support/apps/client.ts");
export const BUN = process.execPath;

export interface ServiceSpec {
  name: string;
  namespace?: string;
  clusterIP: string;
  ports: { name: string; port: number; targetPort: number; protocol?: "TCP" | "UDP"; nodePort?: number }[];
  /** Endpoint pods: ip and node. */
  endpoints: { ip: string; node: string; name?: string }[];
  lb?: "ROUND_ROBIN" | "RANDOM" | { hashSourceIp: true } | { hashHeader: string };
}

export function serviceYaml(s: ServiceSpec): string {
  const ns = s.namespace ?? "default";
  const ports = s.ports
    .map((p) => `    - { name: ${p.name}, port: ${p.port}, protocol: ${p.protocol ?? "TCP"}, targetPort: ${p.targetPort}${p.nodePort ? `, nodePort: ${p.nodePort}` : ""} }`)
    .join("\n");
  const type = s.ports.some((p) => p.nodePort) ? "NodePort" : "ClusterIP";
  let out = `apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: ${ns} }
spec:
  type: ${type}
  clusterIP: ${s.clusterIP}
  ports:
${ports}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${s.name}-1
  namespace: ${ns}
  labels: { kubernetes.io/service-name: ${s.name} }
addressType: IPv4
ports:
${s.ports.map((p) => `  - { name: ${p.name}, port: ${p.targetPort}, protocol: ${p.protocol ?? "TCP"} }`).join("\n")}
endpoints:
${s.endpoints.map((e) => `  - { addresses: ["${e.ip}"], conditions: { ready: true }, nodeName: ${e.node}${e.name ? `, targetRef: { kind: Pod, name: ${e.name}, namespace: ${ns} }` : ""} }`).join("\n")}
`;
  if (s.lb) {
    const lb =
      typeof s.lb === "string"
        ? `simple: ${s.lb}`
        : "hashSourceIp" in s.lb
          ? `consistentHash: { useSourceIp: true }`
          : `consistentHash: { httpHeaderName: ${s.lb.hashHeader} }`;
    out += `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: ${s.name}, namespace: ${ns} }
spec:
  host: ${s.name}
  trafficPolicy:
    loadBalancer:
      ${lb}
`;
  }
  return out;
}

/** What an agent runs beyond the default (edgeDNS + edgeProxy, edgeTunnel off). */
export interface AgentOptions {
  /**
   * Turn edgeTunnel on with this PSK file (false: psk.enable false) and, if given, these relay
   * nodes, transport (default tcp) and identity mode (default compat).
   */
  tunnel?: {
    psk: string | false;
    relayNodes?: { nodeName: string; advertiseAddress: string[] }[];
    transport?: "tcp" | "quic";
    identityMode?: "compat" | "secure";
    /** modules.edgeTunnel.wireFormat: "edgemesh" makes the agent speak EdgeMesh's formats only. */
    wireFormat?: "extended" | "edgemesh";
  };
  /** edgeProxy.udpIdleTimeoutSeconds (the agent's default when unset). */
  udpIdleTimeoutSeconds?: number;
  /** edgeProxy.socks5Proxy.enable (listenPort 10800). */
  socks5?: boolean;
  /** Turn edgeCNI on (needs `tunnel`) with these meshCIDRConfig segments. */
  cni?: { cloudCIDR?: string[]; edgeCIDR?: string[] };
  /** edgeTunnel.metricConfig: the metrics listener on bindAddress (default 0.0.0.0):port. */
  metrics?: { port: number; bindAddress?: string };
  /** commonConfig.logFormat. */
  logFormat?: "text" | "json";
  /** edgeDNS.upstreamResolvers (ip or ip:port). */
  dnsUpstreams?: string[];
}

function agentConfig(manifestDir: string, stateDir: string, o: AgentOptions = {}): string {
  const metricConfig = o.metrics
    ? `    metricConfig:\n      enable: true\n      port: ${o.metrics.port}\n${o.metrics.bindAddress ? `      bindAddress: ${o.metrics.bindAddress}\n` : ""}`
    : "";
  const relays = (o.tunnel?.relayNodes ?? []).map((r) => `      - nodeName: ${r.nodeName}\n        advertiseAddress: [${r.advertiseAddress.map((a) => `"${a}"`).join(", ")}]`).join("\n");
  const tunnel = o.tunnel
    ? `  edgeTunnel:
    enable: true
${o.tunnel.transport ? `    transport: ${o.tunnel.transport}\n` : ""}${o.tunnel.identityMode ? `    identityMode: ${o.tunnel.identityMode}\n` : ""}${o.tunnel.wireFormat ? `    wireFormat: ${o.tunnel.wireFormat}\n` : ""}    psk:
${o.tunnel.psk === false ? "      enable: false\n" : `      enable: true\n      path: ${o.tunnel.psk}\n`}${relays ? `    relayNodes:\n${relays}\n` : ""}${metricConfig}`
    : `  edgeTunnel:
    enable: false
${metricConfig}`;
  const list = (l?: string[]) => `[${(l ?? []).map((c) => `"${c}"`).join(", ")}]`;
  const cni = o.cni ? `  edgeCNI:\n    enable: true\n    meshCIDRConfig:\n      cloudCIDR: ${list(o.cni.cloudCIDR)}\n      edgeCIDR: ${list(o.cni.edgeCIDR)}\n` : "";
  return `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
kubeAPIConfig:
  manifestDir: ${manifestDir}
commonConfig:
  bridgeDeviceName: edgemesh0
  bridgeDeviceIP: 169.254.96.16
  adminAddress: 127.0.0.1:10551
  stateDir: ${stateDir}
${o.logFormat ? `  logFormat: ${o.logFormat}\n` : ""}modules:
  edgeDNS:
    enable: true
${o.dnsUpstreams ? `    upstreamResolvers: [${o.dnsUpstreams.map((u) => `"${u}"`).join(", ")}]\n` : ""}  edgeProxy:
    enable: true
${o.udpIdleTimeoutSeconds !== undefined ? `    udpIdleTimeoutSeconds: ${o.udpIdleTimeoutSeconds}\n` : ""}${o.socks5 ? "    socks5Proxy:\n      enable: true\n      listenPort: 10800\n" : ""}${tunnel}${cni}`;
}

export interface Agent {
  proc: Watched;
  node: TestNode;
  configPath: string;
}

export interface Cluster {
  bed: Testbed;
  dir: string;
  manifests: string;
  node(name: string): TestNode;
  /** Write (or replace) one manifest file in the folder the agents watch. */
  writeManifest(file: string, yaml: string): void;
  removeManifest(file: string): void;
  /** Start `edgemesh agent` on the node and wait until it runs (fails if it exits first). */
  startAgent(node: string, options?: AgentOptions): Promise<Agent>;
  /** Spawn the agent without waiting, for tests that time its start. Stopped by destroy(). */
  spawnAgent(node: string, options?: AgentOptions): Agent;
  /** Start the test app in a pod: HTTP 8080, HTTPS 8443, TCP echo 9000, UDP echo 9001. */
  startApp(pod: Pod, name?: string): Promise<Watched>;
  /** The agent's /routes JSON, fetched inside the node namespace. */
  routes(node: string): Promise<{ version: number; services: { name: string; namespace: string; port: number; listen: string }[] }>;
  destroy(): Promise<void>;
}

export const APP_PORTS = { http: 8080, https: 8443, tcp: 9000, udp: 9001 };

export async function createCluster(spec: TopologySpec, tls?: { cert: string; key: string }): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-e2e-"));
  const manifests = join(dir, "manifests");
  mkdirSync(manifests);
  let bed: Testbed;
  try {
    bed = await createTestbed(spec);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const agents: Agent[] = [];
  const cluster: Cluster = {
    bed,
    dir,
    manifests,
    node: (n) => bed.node(n),
    writeManifest(file, yaml) {
      // Write then rename, so the watcher never reads half a file.
      const tmp = join(dir, `.${file}.tmp`);
      writeFileSync(tmp, yaml);
      renameSync(tmp, join(manifests, file));
    },
    removeManifest(file) {
      rmSync(join(manifests, file), { force: true });
    },
    spawnAgent(name, options) {
      const node = bed.node(name);
      const stateDir = join(dir, `state-${name}`);
      mkdirSync(stateDir, { recursive: true });
      const configPath = join(dir, `agent-${name}.yaml`);
      writeFileSync(configPath, agentConfig(manifests, stateDir, options));
      const proc = node.spawn([BUN, MAIN, "agent", "--config", configPath], { env: { NODE_NAME: name, EDGEMESH_LOG_LEVEL: "info" } });
      const agent = { proc, node, configPath };
      agents.push(agent);
      return agent;
    },
    async startAgent(name, options) {
      const agent = cluster.spawnAgent(name, options);
      const proc = agent.proc;
      // Fail fast (with its output) if the agent exits instead of coming up.
      const exited = proc.proc.exited.then((code) => {
        throw new Error(`agent on ${name} exited with ${code} before running:\n${proc.output().slice(-3000)}`);
      });
      await Promise.race([proc.waitFor(/\brunning\b/, 15_000), exited]);
      exited.catch(() => {});
      return agent;
    },
    async startApp(pod, name = pod.name) {
      const argv = [BUN, APP, "--name", name, "--ip", pod.ip, "--http", String(APP_PORTS.http), "--tcp", String(APP_PORTS.tcp), "--udp", String(APP_PORTS.udp)];
      if (tls) argv.push("--https", String(APP_PORTS.https), "--cert", tls.cert, "--key", tls.key);
      const app = pod.spawn(argv);
      await app.waitFor(/ready/, 10_000);
      return app;
    },
    async routes(name) {
      const res = await bed.node(name).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/routes"]);
      return JSON.parse(res.stdout);
    },
    async destroy() {
      for (const a of agents) await a.proc.kill("SIGTERM").catch(() => 0);
      await bed.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * The cross-site case most tunnel tests start from: the test app in pod b-on-n2 (10.244.2.10) on
 * n2, service web (10.96.0.10:80 -> its HTTP port), and a client pod (10.244.1.100) on n1.
 */
export async function webOnN2(c: Cluster): Promise<{ client: Pod }> {
  await c.startApp(await c.node("n2").addPod("b-on-n2", "10.244.2.10"), "b-on-n2");
  const client = await c.node("n1").addPod("client", "10.244.1.100");
  c.writeManifest(
    "web.yaml",
    serviceYaml({
      name: "web",
      clusterIP: "10.96.0.10",
      ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }],
      endpoints: [{ ip: "10.244.2.10", node: "n2", name: "b-on-n2" }],
    }),
  );
  return { client };
}

/** A Node object with its InternalIP, as the API (or a manifest folder) holds it. */
export function nodeYaml(name: string, internalIP: string): string {
  return `apiVersion: v1
kind: Node
metadata: { name: ${name} }
status:
  addresses:
    - { type: InternalIP, address: ${internalIP} }
    - { type: Hostname, address: ${name} }
`;
}

/** One agent's GET /peers, from the admin server on 127.0.0.1:10551 in its node's namespace. */
export async function peersOf(c: Cluster, node: string): Promise<PeerView[]> {
  return JSON.parse((await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"])).stdout) as PeerView[];
}

/** Poll until `cond` holds or the time is up; returns the last value of cond. */
export async function until(cond: () => Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return true;
    await Bun.sleep(stepMs);
  }
  return cond().catch(() => false);
}

/** A throwaway CA and a server certificate for the given names (openssl). */
export async function makeTestCA(dir: string, names: string[]): Promise<{ ca: string; cert: string; key: string }> {
  const p = (f: string) => join(dir, f);
  const sh = async (argv: string[]) => {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  };
  await sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=edgemesh-e2e-ca", "-keyout", p("ca.key"), "-out", p("ca.crt")]);
  await sh(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${names[0]}`, "-keyout", p("tls.key"), "-out", p("tls.csr")]);
  writeFileSync(p("ext.cnf"), `subjectAltName=${names.map((n) => (/^\d+\./.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",")}\n`);
  await sh(["openssl", "x509", "-req", "-in", p("tls.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", p("ext.cnf"), "-out", p("tls.crt")]);
  return { ca: p("ca.crt"), cert: p("tls.crt"), key: p("tls.key") };
}
