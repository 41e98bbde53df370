// RBAC proven, not guessed: deploy/ is rendered with `kubectl kustomize`, its ClusterRole and
// binding are loaded into the apiserver stand-in, which enforces them, and the real agent
// (`edgemesh agent`, in a network namespace, with the rendered config) goes through a full sync,
// a watch, the offline snapshot and the secure-mode publication of its peer ID, authenticated as
// the DaemonSet's service account. Any call the role does not allow fails the test; every rule
// of the role must have been used by the agent in one of the runs (EndpointSlices on a current
// cluster, Endpoints on one without discovery.k8s.io/v1). EdgeMesh's own role, run the same way,
// shows what the enforcement catches.
// The gateway (deploy/overlays/gateway, the component's objects) the same way: the real
// `edgemesh gateway` with the rendered config, with exactly the Deployment's capabilities,
// authenticated as its own service account, syncs, serves HTTP on port 80 and HTTPS on 443 with
// the certificate of a TLS Secret, follows a Secret rotation and a VirtualService/Service change
// by watch; every call allowed, every rule of its role used. With components/gateway-secure-identity
// the gateway in secure identity mode PATCHes its peer ID onto its Node, allowed and used.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const APP = join(REPO, "test/support/apps/server.ts");
const GW_TOKEN = "edgemesh-gateway-sa-token";
const GW_SA = "kubeedge/edgemesh-gateway";
const GW_USER = serviceAccountUser("kubeedge", "edgemesh-gateway").name;
const N1_IP = "10.10.0.11";

let deploy: DeployCopy;
let bed: Testbed;
let n1: TestNode;
let dir: string;
const rendered = new Map<string, K8sObject[]>();

beforeAll(async () => {
  deploy = copyDeploy();
  deploy.write("overlays/gateway/psk", TEST_PSK);
  // The standalone gateway with the secure-identity component for it.
  deploy.write("gateway-secure/kustomization.yaml", "resources: [../overlays/gateway]\ncomponents: [../components/gateway-secure-identity]\n");
  const paths = ["base", "overlays/secure", "overlays/gateway", "gateway-secure"];
  (await Promise.all(paths.map((p) => deploy.render(p)))).forEach((objs, i) => rendered.set(paths[i]!, objs));
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

/** A self-signed certificate for `cn` (also its SAN), as a kubernetes.io/tls Secret's data. */
function selfSigned(cn: string): { "tls.crt": string; "tls.key": string } {
  const d = mkdtempSync(join(dir, "cert-"));
  const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(d, "k"), "-out", join(d, "c"), "-days", "1", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`);
  const b64 = (f: string) => Buffer.from(readFileSync(join(d, f))).toString("base64");
  return { "tls.crt": b64("c"), "tls.key": b64("k") };
}
const tlsSecret = (cn: string) => ({ metadata: { name: "gw-tls", namespace: "demo" }, type: "kubernetes.io/tls", data: selfSigned(cn) });
/** An Opaque Secret the gateway must never receive (the field selector keeps it out). */
const otherSecret = { metadata: { name: "db-password", namespace: "demo" }, type: "Opaque", data: { password: Buffer.from("hunter2").toString("base64") } };
const gatewayObj = {
  metadata: { name: "gw", namespace: "demo" },
  spec: {
    selector: { "kubeedge.io/edgemesh": "edgemesh-gateway" },
    servers: [
      { port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] },
      { port: { number: 443, name: "https", protocol: "HTTPS" }, hosts: ["*"], tls: { mode: "SIMPLE", credentialName: "gw-tls" } },
    ],
  },
};
const vsTo = (host: string) => ({ metadata: { name: "vs", namespace: "demo" }, spec: { hosts: ["*"], gateways: ["gw"], http: [{ route: [{ destination: { host, port: { number: 80 } } }] }] } });
/** The late Service's endpoint: the second app, on another port of n1. */
function lateSlice() {
  const slice = fx.endpointSlice("demo", "late", [N1_IP], { node: "n1" }) as any;
  slice.ports[0].port = 8081;
  return slice;
}

/** The rendered gateway config with only the test bed's paths swapped in (nic "*": eth0 and lo of n1). */
function gatewayConfigFile(objs: readonly K8sObject[], run: string, server: string, secure = false): string {
  const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgemesh-gateway-cfg-"))!;
  const config = load(cm.data["edgemesh-gateway.yaml"]) as any;
  const runDir = join(dir, run);
  mkdirSync(join(runDir, "state"), { recursive: true });
  writeKubeconfig(join(runDir, "kubeconfig"), server, GW_TOKEN);
  writeFileSync(join(runDir, "psk"), TEST_PSK);
  config.kubeAPIConfig = { ...config.kubeAPIConfig, kubeConfig: join(runDir, "kubeconfig") };
  config.commonConfig.stateDir = join(runDir, "state");
  config.modules.edgeTunnel.psk.path = join(runDir, "psk");
  if (secure) config.modules.edgeTunnel.identityMode = "secure";
  const file = join(runDir, "edgemesh-gateway.yaml");
  writeFileSync(file, dump(config));
  return file;
}

const gwUsed: string[][] = [];

describe("RBAC proof: the rendered gateway role against the real `edgemesh gateway`", () => {
  let overlay = "overlays/gateway";
  const objs = () => rendered.get(overlay)!;
  const admin = () => {
    const d = find(objs(), "Deployment", "edgemesh-gateway");
    return `127.0.0.1:${d.spec.template.spec.containers[0].readinessProbe.httpGet.port}`;
  };
  const caps = (): string[] => find(objs(), "Deployment", "edgemesh-gateway").spec.template.spec.containers[0].securityContext.capabilities.add;
  const gwReadyz = async () => (await n1.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", `http://${admin()}/readyz`])).stdout;
  const gwServices = async () => ((JSON.parse((await n1.exec(["curl", "-sS", "--max-time", "2", `http://${admin()}/routes`])).stdout) as { services?: { name: string }[] }).services ?? []).map((s) => s.name);
  const get = async (url: string, extra: string[] = []) => {
    const r = await n1.exec(["curl", "-sS", "--max-time", "3", ...extra, url]);
    return r.code === 0 ? r.stdout : `curl failed (${r.code}): ${r.stderr.trim()}`;
  };
  const servedSubject = async () =>
    (await n1.exec(["sh", "-c", `echo | openssl s_client -connect ${N1_IP}:443 -servername gw.example 2>/dev/null | openssl x509 -noout -subject`])).stdout.trim();

  /** One run: the stand-in enforcing the gateway's role, seeded; the gateway with exactly the Deployment's capabilities. */
  async function runGw(name: string, options: { endpointSlices?: boolean; secure?: boolean }, seedMore: (api: RbacApi) => Promise<void>, steps: (api: RbacApi, gw: { pid: number; output(): string }) => Promise<void>) {
    const api = await startRbacApi(n1, dir, objs(), { token: GW_TOKEN, serviceAccount: GW_SA, ...options });
    await api.load("Service", [fx.service("demo", "web", "10.96.0.10"), fx.service("demo", "late", "10.96.0.11")]);
    await api.load("Node", [fx.node("n1", N1_IP)]);
    await api.load("DestinationRule", [fx.destinationRule("demo", "web", { simple: "ROUND_ROBIN" })]);
    await api.load("Gateway", [gatewayObj]);
    await api.load("VirtualService", [vsTo("web")]);
    await api.load("Secret", [tlsSecret("gw-v1.example"), otherSecret]);
    await seedMore(api);
    const argv = [process.execPath, MAIN, "gateway", "--config", gatewayConfigFile(objs(), name, api.url, options.secure ?? false)];
    const limited = ["setpriv", `--bounding-set=-all,${caps().map((c) => `+${c.toLowerCase()}`).join(",")}`, "--inh-caps=-all", "--", ...argv];
    const gw = n1.spawn(limited, { env: { NODE_NAME: "n1", EDGEMESH_LOG_LEVEL: "info" } });
    const exited = gw.proc.exited.then((code) => {
      throw new Error(`gateway exited with ${code} before running:\n${gw.output().slice(-3000)}`);
    });
    try {
      await Promise.race([gw.waitFor(/\brunning\b/, 30_000), exited]);
      exited.catch(() => {});
      await steps(api, { pid: gw.proc.pid, output: () => gw.output() });
    } catch (err) {
      const refused = denied(await api.audit().catch(() => []));
      if (refused.length > 0) (err as Error).message += `\nrefused by the role:\n  ${[...new Set(refused)].join("\n  ")}`;
      (err as Error).message += `\ngateway output:\n${gw.output().slice(-3000)}`;
      throw err;
    } finally {
      exited.catch(() => {});
      expect(await gw.kill("SIGTERM")).toBe(0);
    }
    return api.audit();
  }

  test("current cluster: sync, HTTP on 80 and HTTPS on 443 with the Secret's certificate, rotation and route changes by watch, all allowed", async () => {
    expect(caps()).toEqual(["NET_BIND_SERVICE"]);
    const apps = [n1.spawn([process.execPath, APP, "--name", "web-on-n1", "--ip", N1_IP, "--http", "8080"]), n1.spawn([process.execPath, APP, "--name", "late-on-n1", "--ip", N1_IP, "--http", "8081"])];
    try {
      await Promise.all(apps.map((a) => a.waitFor(/ready/, 10_000)));
      const audit = await runGw("gateway", {}, async (api) => {
        await api.load("EndpointSlice", [fx.endpointSlice("demo", "web", [N1_IP], { node: "n1" }), lateSlice()]);
      }, async (api, gw) => {
        // Exactly the Deployment's set: NET_BIND_SERVICE (bit 10) and nothing else.
        const status = (await n1.must(["cat", `/proc/${gw.pid}/status`])).stdout;
        expect(/^CapEff:\s*(\S+)$/m.exec(status)?.[1]).toBe("0000000000000400");
        await until("ready", async () => (await gwReadyz()) === "200");
        // Port 80 (below 1024: the one capability) routes to the pod.
        await until("HTTP on port 80", async () => (await get(`http://${N1_IP}/`)) === "web-on-n1");
        // Port 443 serves the Secret's certificate, read through the role.
        await until("HTTPS with the Secret's certificate", async () => (await servedSubject()).includes("gw-v1.example"));
        expect(await get(`https://${N1_IP}/`, ["-k"])).toBe("web-on-n1");
        // Watch: a rotated certificate and a VirtualService moved to another Service.
        await api.apply("update", "Secret", tlsSecret("gw-v2.example"));
        await until("rotated certificate served", async () => (await servedSubject()).includes("gw-v2.example"));
        await api.apply("update", "VirtualService", vsTo("late"));
        await until("the route follows the VirtualService", async () => (await get(`http://${N1_IP}/`)) === "late-on-n1");
        // Snapshot in the gateway's own stateDir, without any Secret.
        await until("metadata snapshot", async () => existsSync(join(dir, "gateway/state/metadata.json")));
        const snap = readFileSync(join(dir, "gateway/state/metadata.json"), "utf8");
        expect(JSON.parse(snap).objects.Secret).toBeUndefined();
        expect(snap).not.toContain("tls.key");
        // Secrets only ever asked for with the TLS field selector: the Opaque one never reaches it.
        const secretRequests = (await api.requests()).filter((r) => r.path.endsWith("/secrets"));
        expect(secretRequests.length).toBeGreaterThanOrEqual(2); // the list and the watch
        for (const r of secretRequests) expect(r.query.fieldSelector).toBe("type=kubernetes.io/tls");
        const rss = /^VmRSS:\s*(\d+) kB$/m.exec((await n1.must(["cat", `/proc/${gw.pid}/status`])).stdout)?.[1];
        console.log(`gateway RSS with the tunnel on, after the run: ${(Number(rss) / 1024).toFixed(1)} MiB`);
      });
      expect(denied(audit)).toEqual([]);
      const mine = usedGrants(audit, GW_USER);
      expect(mine).toContain("watch core/secrets");
      expect(mine).toContain("watch discovery.k8s.io/endpointslices");
      expect(mine).not.toContain("list core/endpoints");
      expect(audit.some((a) => a.user === GW_USER && a.resource === "secrets" && a.verb === "list")).toBe(true);
      gwUsed.push(mine);
    } finally {
      for (const a of apps) await a.kill("SIGTERM");
    }
  }, 120_000);

  test("a cluster without discovery.k8s.io/v1: Endpoints instead, all allowed", async () => {
    const audit = await runGw("gateway-endpoints", { endpointSlices: false }, async (api) => {
      await api.load("Endpoints", [fx.endpoints("demo", "web", [N1_IP])]);
    }, async (api) => {
      await until("ready", async () => (await gwReadyz()) === "200");
      expect(await gwServices()).toContain("web");
      await api.apply("add", "Service", fx.service("demo", "later", "10.96.0.12"));
      await api.apply("add", "Endpoints", fx.endpoints("demo", "later", [N1_IP]));
      await until("the watched service routed", async () => (await gwServices()).includes("later"));
    });
    expect(denied(audit)).toEqual([]);
    const mine = usedGrants(audit, GW_USER);
    expect(mine).toContain("watch core/endpoints");
    gwUsed.push(mine);
  }, 120_000);

  test("the gateway's role holds nothing the gateway did not use, and no verb but list and watch", () => {
    expect(gwUsed.length).toBe(2);
    const all = [...new Set(gwUsed.flat())].sort();
    expect(roleGrants(objs(), "edgemesh-gateway")).toEqual(all);
    for (const g of all) expect(g).toMatch(/^(list|watch) /);
  });

  test("secure identity (components/gateway-secure-identity): the gateway PATCHes its peer ID onto Node n1 under its own key, allowed; patch nodes is the only addition and it is used", async () => {
    overlay = "gateway-secure";
    try {
      const added = roleGrants(objs(), "edgemesh-gateway").filter((g) => !roleGrants(rendered.get("overlays/gateway")!, "edgemesh-gateway").includes(g));
      expect(added).toEqual(["patch core/nodes"]);
      const audit = await runGw("gateway-secure", { secure: true }, async (api) => {
        await api.load("EndpointSlice", [fx.endpointSlice("demo", "web", [N1_IP], { node: "n1" })]);
      }, async (api, gw) => {
        await until("ready", async () => (await gwReadyz()) === "200");
        const id = gw.output().match(/tunnel started peerId=(\S+)/)?.[1] ?? "";
        expect(gw.output()).toMatch(/tunnel started .*mode=secure/);
        expect(id.length).toBeGreaterThan(40);
        await until("the gateway's peer ID on Node n1", async () => (await api.requests()).some((r) => r.method === "PATCH"));
        const patches = (await api.requests()).filter((r) => r.method === "PATCH");
        expect(patches.map((r) => r.path)).toEqual(["/api/v1/nodes/n1"]);
        // Read back through the watch the gateway itself follows: its own publication, seen.
        await until("published in the log", async () => gw.output().includes("published the tunnel peer ID"));
        expect(gw.output()).toContain(`node=n1 peer=${id}`);
      });
      expect(denied(audit)).toEqual([]);
      const mine = usedGrants(audit, GW_USER);
      expect(mine).toContain("patch core/nodes");
      expect(audit.some((a) => a.user === GW_USER && a.verb === "patch" && a.resource === "nodes")).toBe(true);
    } finally {
      overlay = "overlays/gateway";
    }
  }, 120_000);
});
