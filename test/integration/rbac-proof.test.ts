// RBAC proven, not guessed: deploy/ is rendered with `kubectl kustomize`, its ClusterRole and
// binding are loaded into the apiserver stand-in, which enforces them, and the real agent
// (`edgemesh agent`, in a network namespace, with the rendered config) goes through a full sync,
// a watch, the offline snapshot and the secure-mode publication of its peer ID, authenticated as
// the DaemonSet's service account. Any call the role does not allow fails the test; every rule
// of the role must have been used by the agent in one of the runs (EndpointSlices on a current
// cluster, Endpoints on one without discovery.k8s.io/v1). EdgeMesh's own role, run the same way,
// shows what the enforcement catches.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump, load } from "js-yaml";
import * as fx from "../support/apiserver/fixtures.ts";
import { serviceAccountUser } from "../support/apiserver/rbac.ts";
import { copyDeploy, find, REPO, TEST_PSK, type DeployCopy, type K8sObject } from "../support/deploy.ts";
import { createTestbed, oneLan, type Testbed, type TestNode } from "../support/netns.ts";
import { denied, roleGrants, startRbacApi, usedGrants, writeKubeconfig, type RbacApi } from "../support/rbac-proof.ts";

const MAIN = join(REPO, "src/main/index.ts");
const TOKEN = "edgemesh-agent-sa-token";
const SA = "kubeedge/edgemesh-agent";
const USER = serviceAccountUser("kubeedge", "edgemesh-agent").name;
const PEER_ID_ANNOTATION = "edgemesh.kubeedge.io/peer-id";

let deploy: DeployCopy;
let bed: Testbed;
let n1: TestNode;
let dir: string;
const rendered = new Map<string, K8sObject[]>();

beforeAll(async () => {
  deploy = copyDeploy();
  for (const path of ["base", "overlays/secure"]) rendered.set(path, await deploy.render(path));
  dir = mkdtempSync(join(tmpdir(), "edgemesh-rbac-"));
  bed = await createTestbed(oneLan(1));
  n1 = bed.node("n1");
}, 60_000);

afterAll(async () => {
  await bed?.destroy();
  deploy?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The cluster the agent sees: one service with endpoints, both nodes, Istio objects. */
async function seed(api: RbacApi): Promise<void> {
  await api.load("Service", [fx.service("demo", "web", "10.96.0.10")]);
  await api.load("EndpointSlice", [fx.endpointSlice("demo", "web", ["10.244.1.10"], { node: "n1" })]);
  await api.load("Endpoints", [fx.endpoints("demo", "web", ["10.244.1.10"])]);
  await api.load("Node", [fx.node("n1", "10.10.0.11"), fx.node("n2", "10.10.0.12")]);
  await api.load("DestinationRule", [fx.destinationRule("demo", "web", { simple: "RANDOM" })]);
  await api.load("Gateway", [fx.gateway("demo", "gw")]);
  await api.load("VirtualService", [fx.virtualService("demo", "vs", "gw", "web")]);
}

/** The rendered ConfigMap's config, with only the test bed's paths swapped in. */
function agentConfig(objs: readonly K8sObject[], run: string, server: string): string {
  const config = load(find(objs, "ConfigMap").data["edgemesh-agent.yaml"]) as any;
  const runDir = join(dir, run);
  mkdirSync(join(runDir, "state"), { recursive: true });
  writeKubeconfig(join(runDir, "kubeconfig"), server, TOKEN);
  writeFileSync(join(runDir, "psk"), TEST_PSK);
  config.kubeAPIConfig = { ...config.kubeAPIConfig, kubeConfig: join(runDir, "kubeconfig") };
  config.commonConfig.stateDir = join(runDir, "state");
  config.modules.edgeTunnel.psk.path = join(runDir, "psk");
  const file = join(runDir, "edgemesh-agent.yaml");
  writeFileSync(file, dump(config));
  return file;
}

const curl = async (path: string) => (await n1.exec(["curl", "-sS", "--max-time", "2", `http://127.0.0.1:10551${path}`])).stdout;
const readyz = async () => (await n1.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:10551/readyz"])).stdout;
async function until(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await Bun.sleep(100);
  }
}
const services = async () => ((JSON.parse(await curl("/routes")) as { services: { name: string }[] }).services ?? []).map((s) => s.name);

async function startAgent(configFile: string) {
  const agent = n1.spawn([process.execPath, MAIN, "agent", "--config", configFile], { env: { NODE_NAME: "n1", EDGEMESH_LOG_LEVEL: "info" } });
  const exited = agent.proc.exited.then((code) => {
    throw new Error(`agent exited with ${code} before running:\n${agent.output().slice(-3000)}`);
  });
  await Promise.race([agent.waitFor(/\brunning\b/, 20_000), exited]);
  exited.catch(() => {});
  return agent;
}

const used: string[][] = [];

/**
 * One run: the stand-in enforcing `objs`' RBAC, seeded; the agent with `objs`' config; `steps`
 * against both; the agent stopped. Returns the audit. A failure also lists what the role refused.
 */
async function run(objs: readonly K8sObject[], name: string, options: { endpointSlices?: boolean }, steps: (api: RbacApi, agent: Awaited<ReturnType<typeof startAgent>>) => Promise<void>) {
  const api = await startRbacApi(n1, dir, objs, { token: TOKEN, serviceAccount: SA, ...options });
  await seed(api);
  const agent = await startAgent(agentConfig(objs, name, api.url));
  try {
    await steps(api, agent);
  } catch (err) {
    const refused = denied(await api.audit().catch(() => []));
    if (refused.length > 0) (err as Error).message += `\nrefused by the role:\n  ${[...new Set(refused)].join("\n  ")}`;
    throw err;
  } finally {
    expect(await agent.kill("SIGTERM")).toBe(0);
  }
  return api.audit();
}

describe("RBAC proof: the rendered role against the real agent", () => {
  test("secure overlay, current cluster: sync, watch, snapshot and peer-ID publication, all allowed", async () => {
    const audit = await run(rendered.get("overlays/secure")!, "secure", {}, async (api, agent) => {
      // Full sync: ready, and the service is routed.
      await until("ready", async () => (await readyz()) === "200");
      expect(await services()).toContain("web");
      // Watch: an object added after the sync shows up.
      await api.apply("add", "Service", fx.service("demo", "late", "10.96.0.11"));
      await api.apply("add", "EndpointSlice", fx.endpointSlice("demo", "late", ["10.244.1.11"], { node: "n1" }));
      await until("the watched service routed", async () => (await services()).includes("late"));
      // Snapshot: written to the stateDir (a host path in the DaemonSet).
      await until("metadata snapshot", async () => existsSync(join(dir, "secure/state/metadata.json")));
      // Secure mode: the peer ID published on the agent's own Node.
      const peerId = (await agent.waitFor(/tunnel started peerId=(\S+)/, 15_000))[1]!;
      await until("peer ID annotation on Node n1", async () => ((await api.object("Node", undefined, "n1")) as any)?.metadata.annotations?.[PEER_ID_ANNOTATION] === peerId);
    });
    expect(denied(audit)).toEqual([]);
    const mine = usedGrants(audit, USER);
    expect(mine).toContain("patch core/nodes");
    expect(mine).toContain("watch discovery.k8s.io/endpointslices");
    expect(mine).not.toContain("list core/endpoints");
    used.push(mine);
  }, 90_000);

  test("base, a cluster without discovery.k8s.io/v1: Endpoints instead, no patch, all allowed", async () => {
    const audit = await run(rendered.get("base")!, "compat", { endpointSlices: false }, async (api) => {
      await until("ready", async () => (await readyz()) === "200");
      expect(await services()).toContain("web");
      await api.apply("add", "Service", fx.service("demo", "late", "10.96.0.11"));
      await api.apply("add", "Endpoints", fx.endpoints("demo", "late", ["10.244.1.11"]));
      await until("the watched service routed", async () => (await services()).includes("late"));
      await until("metadata snapshot", async () => existsSync(join(dir, "compat/state/metadata.json")));
    });
    expect(denied(audit)).toEqual([]);
    const mine = usedGrants(audit, USER);
    expect(mine).toContain("watch core/endpoints");
    expect(mine.some((g) => g.startsWith("patch"))).toBe(false);
    used.push(mine);
  }, 90_000);

  test("the roles hold nothing the agent did not use", () => {
    expect(used.length).toBe(2);
    const all = [...new Set(used.flat())].sort();
    expect(roleGrants(rendered.get("overlays/secure")!, "edgemesh-agent")).toEqual(all);
    expect(roleGrants(rendered.get("base")!, "edgemesh-agent")).toEqual(all.filter((g) => !g.startsWith("patch ")));
  });

  test("EdgeMesh's own role, enforced the same way, is refused (no endpointslices, no nodes) and the agent stays not ready", async () => {
    // build/agent/resources/02-clusterrole.yaml of kubeedge/edgemesh v1.17, bound to our account.
    const edgemeshRole = {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "edgemesh-agent" },
      rules: [
        { apiGroups: [""], resources: ["pods", "services", "endpoints", "namespaces"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.istio.io"], resources: ["*"], verbs: ["get", "list", "watch"] },
      ],
    };
    const objs = [edgemeshRole, find(rendered.get("base")!, "ClusterRoleBinding")] as K8sObject[];
    // The agent gets its config from the base; only the RBAC objects are EdgeMesh's.
    const config = find(rendered.get("base")!, "ConfigMap");
    const audit = await run([...objs, config], "edgemesh-role", {}, async (api) => {
      await until("both refusals", async () => {
        const d = denied(await api.audit());
        return d.some((l) => l.includes("list discovery.k8s.io/endpointslices")) && d.some((l) => l.includes("list core/nodes"));
      });
      expect(await readyz()).toBe("503");
      expect(await curl("/readyz")).toMatch(/forbidden|403/i);
    });
    expect(usedGrants(audit, USER)).not.toContain("list core/nodes");
  }, 90_000);
});
