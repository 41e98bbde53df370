// deploy/components/metrics, rendered by the real `kubectl kustomize` on top of the edge overlay:
// checked structurally (the listener's flags, the container port and the Prometheus annotations
// agree; the component changes nothing else), then the real agent is started in a network
// namespace with the rendered args (the kubelet's $(VAR) expansion done here from the rendered
// env: HOST_IP is the test node's LAN address) and the rendered config, and Prometheus's view is
// checked from another node: /metrics answers on the node address and port the annotations name,
// the exposition passes promtool, and the admin endpoint and the metrics port on loopback do not
// answer from there.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump, load } from "js-yaml";
import { parseArgs } from "../../src/main/args.ts";
import { copyDeploy, find, REPO, TEST_PSK, type DeployCopy, type K8sObject } from "../support/deploy.ts";
import { createTestbed, oneLan, type Testbed, type TestNode } from "../support/netns.ts";
import { parseSamples, promtoolCheck } from "../support/promtool.ts";
import { startRbacApi, writeKubeconfig } from "../support/rbac-proof.ts";

const MAIN = join(REPO, "src/main/index.ts");
const TOKEN = "edgemesh-agent-sa-token";

let deploy: DeployCopy;
let withMetrics: K8sObject[];
let edge: K8sObject[];
beforeAll(async () => {
  deploy = copyDeploy();
  deploy.write("edge-metrics/kustomization.yaml", "resources: [../overlays/edge]\ncomponents: [../components/metrics]\n");
  [withMetrics, edge] = await Promise.all([deploy.render("edge-metrics"), deploy.render("overlays/edge")]);
}, 30_000);
afterAll(() => deploy?.remove());

const daemonSet = (objs: K8sObject[]) => find(objs, "DaemonSet", "edgemesh-agent");
const containerOf = (objs: K8sObject[]) => daemonSet(objs).spec.template.spec.containers[0];

/** The kubelet's expansion of $(VAR) in args from the container's env (fieldRefs resolved by `fields`). */
function expandArgs(container: any, fields: Record<string, string>): string[] {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    const v = e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath];
    if (v === undefined) throw new Error(`env ${e.name}: no value for ${JSON.stringify(e.valueFrom)}`);
    env.set(e.name, v);
  }
  return (container.args as string[]).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env.get(name) ?? m));
}

describe("deploy/components/metrics, rendered", () => {
  test("the listener's flags, the container port and the Prometheus annotations name the same port, on the node address", () => {
    const ds = daemonSet(withMetrics);
    const pod = ds.spec.template;
    expect(pod.spec.hostNetwork).toBe(true);
    expect(pod.metadata.annotations).toEqual({ "prometheus.io/scrape": "true", "prometheus.io/port": "9999", "prometheus.io/path": "/metrics" });
    const c = containerOf(withMetrics);
    expect(c.ports).toEqual([{ name: "metrics", containerPort: 9999, protocol: "TCP" }]);
    expect(c.env.find((e: any) => e.name === "HOST_IP")).toEqual({ name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } });
    // The agent's own parser reads the expanded args: the listener is on, at the node's address.
    const cmd = parseArgs(expandArgs(c, { "status.hostIP": "192.0.2.10", "spec.nodeName": "edge-1", "metadata.namespace": "kubeedge" }));
    expect(cmd).toMatchObject({ cmd: "agent", metricsBindAddress: "192.0.2.10", metricsPort: 9999 });
    expect(String((cmd as { metricsPort: number }).metricsPort)).toBe(pod.metadata.annotations["prometheus.io/port"]);
    // The admin endpoint (everything that is not read-only) stays on loopback: the probes and config.
    const config = load(find(withMetrics, "ConfigMap").data["edgemesh-agent.yaml"]) as any;
    expect(config.commonConfig.adminAddress).toBe("127.0.0.1:10551");
    expect(c.livenessProbe.httpGet).toMatchObject({ host: "127.0.0.1", port: 10551 });
  });

  test("the component changes nothing but the annotations, the HOST_IP env, the port and two appended args", () => {
    const strip = (objs: K8sObject[]) => {
      const copy = structuredClone(objs);
      const ds = daemonSet(copy);
      const c = ds.spec.template.spec.containers[0];
      delete ds.spec.template.metadata.annotations;
      delete c.ports;
      c.env = c.env.filter((e: any) => e.name !== "HOST_IP");
      c.args = c.args.filter((a: string) => !a.startsWith("--metrics-"));
      return copy;
    };
    expect(containerOf(withMetrics).args).toEqual([...containerOf(edge).args, "--metrics-bind-address=$(HOST_IP)", "--metrics-port=9999"]);
    expect(strip(withMetrics)).toEqual(edge);
  });
});

describe("deploy/components/metrics, run", () => {
  let bed: Testbed;
  let n1: TestNode;
  let n2: TestNode;
  let dir: string;
  let agent: ReturnType<TestNode["spawn"]> | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edgemesh-deploy-metrics-"));
    bed = await createTestbed(oneLan(2));
    n1 = bed.node("n1");
    n2 = bed.node("n2");
  }, 60_000);
  afterAll(async () => {
    if (agent) await agent.kill("SIGTERM");
    await bed?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The rendered container's args, $(VAR)s expanded for n1, --config pointing at the rendered
   * config with only the test bed's paths swapped in (API, state, PSK). */
  async function renderedRun(): Promise<string[]> {
    if (!existsSync(join(dir, "edgemesh-agent.yaml"))) {
      const api = await startRbacApi(n1, dir, withMetrics, { token: TOKEN, serviceAccount: "kubeedge/edgemesh-agent" });
      const config = load(find(withMetrics, "ConfigMap").data["edgemesh-agent.yaml"]) as any;
      mkdirSync(join(dir, "state"));
      writeKubeconfig(join(dir, "kubeconfig"), api.url, TOKEN);
      writeFileSync(join(dir, "psk"), TEST_PSK);
      config.kubeAPIConfig = { ...config.kubeAPIConfig, kubeConfig: join(dir, "kubeconfig") };
      config.commonConfig.stateDir = join(dir, "state");
      config.modules.edgeTunnel.psk.path = join(dir, "psk");
      expect(config.modules.edgeTunnel.metricConfig?.enable ?? false).toBe(false); // the flags turn it on
      writeFileSync(join(dir, "edgemesh-agent.yaml"), dump(config));
    }
    const args = expandArgs(containerOf(withMetrics), { "status.hostIP": n1.ip, "spec.nodeName": "n1", "metadata.namespace": "kubeedge" });
    args[args.indexOf("--config") + 1] = join(dir, "edgemesh-agent.yaml");
    expect(args.filter((a) => a.startsWith("--metrics-"))).toEqual([`--metrics-bind-address=${n1.ip}`, "--metrics-port=9999"]);
    return [process.execPath, MAIN, ...args];
  }
  const ENV = () => ({ NODE_NAME: "n1", NAMESPACE: "kubeedge", HOST_IP: n1.ip });

  test("the node's port 9999 taken: the start fails in one line naming the flag and the holder", async () => {
    const holder = n1.spawn(["socat", `TCP-LISTEN:9999,bind=${n1.ip},reuseaddr,fork`, "EXEC:cat"]);
    try {
      for (let i = 0; i < 50 && (await n1.exec(["sh", "-c", "ss -ltn 'sport = :9999' | grep -q 9999"])).code !== 0; i++) await Bun.sleep(50);
      const proc = n1.spawn(await renderedRun(), { env: ENV() });
      expect(await proc.proc.exited).toBe(1);
      const line = proc.output().split("\n").find((l) => l.includes("metrics listener"));
      expect(line).toContain(`${n1.ip}:9999`);
      expect(line).toContain("--metrics-port");
      expect(line).toContain("socat");
      // A failed start removes what it created: the next start (below) finds no leftovers.
      expect((await n1.exec(["ip", "link", "show", "edgemesh0"])).code).not.toBe(0);
    } finally {
      await holder.kill("SIGTERM");
    }
  }, 60_000);

  test("the agent started with the rendered args and config serves /metrics to another node on the node address only", async () => {
    const proc = n1.spawn(await renderedRun(), { env: ENV() });
    agent = proc;
    const exited = proc.proc.exited.then((code) => {
      throw new Error(`agent exited with ${code} before running:\n${proc.output().slice(-3000)}`);
    });
    const running = await Promise.race([proc.waitFor(/\brunning\b.*/, 30_000), exited]);
    exited.catch(() => {});
    expect(running[0]).toContain(`metrics=${n1.ip}:9999`);

    // Prometheus's view: the pod IP of a hostNetwork pod is the node's, the port the annotation's.
    const port = daemonSet(withMetrics).spec.template.metadata.annotations["prometheus.io/port"];
    const scrape = await n2.must(["curl", "-sS", "-f", "--max-time", "3", `http://${n1.ip}:${port}/metrics`]);
    const lint = await promtoolCheck(scrape.stdout);
    expect(lint.output).toBe("");
    expect(lint.code).toBe(0);
    const samples = parseSamples(scrape.stdout);
    expect([...samples.keys()].some((k) => k.startsWith("edgemesh_build_info{"))).toBe(true);
    expect(samples.get("process_open_fds") ?? 0).toBeGreaterThan(0);
    const code = async (place: TestNode, url: string, ...more: string[]) =>
      (await place.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", ...more, url])).stdout;
    expect(await code(n2, `http://${n1.ip}:${port}/healthz`)).toBe("200");
    expect(await code(n2, `http://${n1.ip}:${port}/metrics`, "-X", "POST")).toBe("405"); // read-only
    // Nothing else is reachable from another node: the admin endpoint stays on loopback...
    expect(await code(n2, `http://${n1.ip}:10551/healthz`)).toBe("000");
    expect(await code(n1, "http://127.0.0.1:10551/healthz")).toBe("200");
    // ...and the metrics listener is on the node address only, not on every address (0.0.0.0).
    expect(await code(n1, "http://127.0.0.1:9999/metrics")).toBe("000");
    expect(await proc.kill("SIGTERM")).toBe(0);
    agent = undefined;
  }, 90_000);
});
