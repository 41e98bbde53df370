// `edgemesh agent` starting for real in a node's network namespace: with exactly the capabilities
// the rendered DaemonSet grants it runs (DNS, DNAT, clean stop); without NET_ADMIN it stops before
// creating anything; and when a port it needs is taken (DNS, tunnel, admin) it stops with one line
// naming the address, the config key and the process holding the port, after removing the
// edgemesh0 device, its iptables chains and jumps, and every listener it had opened.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OWN_CHAINS } from "../../src/iptables/index.ts";
import { copyDeploy, find, REPO } from "../support/deploy.ts";
import { createTestbed, oneLan, type Testbed, type TestNode } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";

const MAIN = join(REPO, "src/main/index.ts");
const APP = join(REPO, "test/support/apps/server.ts");
const NODE_IP = "10.10.0.11";

let bed: Testbed;
let n1: TestNode;
let dir: string;
let daemonSetCaps: string[];
const spawned: Watched[] = [];

beforeAll(async () => {
  const deploy = copyDeploy();
  try {
    const ds = find(await deploy.render("base"), "DaemonSet");
    daemonSetCaps = ds.spec.template.spec.containers[0].securityContext.capabilities.add;
  } finally {
    deploy.remove();
  }
  dir = mkdtempSync(join(tmpdir(), "edgemesh-startup-"));
  const manifests = join(dir, "manifests");
  mkdirSync(manifests);
  writeFileSync(
    join(manifests, "web.yaml"),
    `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: 80, protocol: TCP, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints: [{ addresses: ["${NODE_IP}"], conditions: { ready: true }, nodeName: n1 }]
`,
  );
  bed = await createTestbed(oneLan(1));
  n1 = bed.node("n1");
  const app = n1.spawn([process.execPath, APP, "--name", "web-on-n1", "--ip", NODE_IP, "--http", "8080"]);
  await app.waitFor(/ready/, 10_000);
}, 60_000);

afterEach(async () => {
  for (const p of spawned.splice(0)) await p.kill("SIGKILL").catch(() => 0);
});

afterAll(async () => {
  await bed?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(name: string, tunnel = false, metricsPort = 0): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
kubeAPIConfig: { manifestDir: ${join(dir, "manifests")} }
commonConfig: { stateDir: ${join(dir, `state-${name}`)}, adminAddress: 127.0.0.1:10551 }
modules:
  edgeDNS: { enable: true }
  edgeProxy: { enable: true }
  edgeTunnel: { enable: ${tunnel}, psk: { enable: false }, metricConfig: { enable: ${metricsPort > 0}, port: ${metricsPort || 9999} } }
`,
  );
  return file;
}

/** The agent in n1, optionally with its capability bounding set limited to `caps` (setpriv). */
function agent(configFile: string, caps?: readonly string[]): Watched {
  const argv = [process.execPath, MAIN, "agent", "--config", configFile];
  const limited = caps ? ["setpriv", `--bounding-set=-all,${caps.map((c) => `+${c.toLowerCase()}`).join(",")}`, "--inh-caps=-all", "--", ...argv] : argv;
  const p = n1.spawn(limited, { env: { NODE_NAME: "n1", EDGEMESH_LOG_LEVEL: "debug" } });
  spawned.push(p);
  return p;
}

/** A process holding a TCP port in n1 (socat, so the error can name it). */
async function holdTcp(host: string, port: number): Promise<Watched> {
  const p = n1.spawn(["socat", `TCP-LISTEN:${port},bind=${host},reuseaddr,fork`, "/dev/null"]);
  spawned.push(p);
  for (let i = 0; i < 100; i++) {
    if ((await n1.exec(["ss", "-Hltn", `sport = :${port}`])).stdout.includes(`:${port}`)) return p;
    await Bun.sleep(20);
  }
  throw new Error(`socat did not listen on ${host}:${port}`);
}

/** Exit code and the fatal line (the one ERROR line of the top-level logger), its message only. */
async function failed(p: Watched): Promise<{ code: number; line: string; output: string }> {
  const code = await Promise.race([p.proc.exited, Bun.sleep(30_000).then(() => -1)]);
  const fatal = " ERROR [edgemesh] ";
  const lines = p.output().split("\n").filter((l) => l.includes(fatal));
  expect(lines.length).toBe(1);
  return { code, line: lines[0]!.slice(lines[0]!.indexOf(fatal) + fatal.length), output: p.output() };
}

/** Nothing of the agent left in n1: no device, none of our chains, no jumps, no listeners. */
async function expectClean(): Promise<void> {
  expect((await n1.exec(["ip", "link", "show", "dev", "edgemesh0"])).code).not.toBe(0);
  const nat = (await n1.must(["iptables-save", "-t", "nat"])).stdout;
  for (const chain of OWN_CHAINS) expect(nat).not.toContain(chain);
  const listening = (await n1.must(["ss", "-Hlntu"])).stdout;
  expect(listening).not.toContain("169.254.96.16:");
  expect(listening).not.toContain("127.0.0.1:10551");
}

const pidOf = (p: Watched) => p.proc.pid;

describe("agent start-up in a network namespace", () => {
  test("with exactly the DaemonSet's capabilities it serves DNS and DNAT, and a SIGTERM leaves nothing", async () => {
    expect([...daemonSetCaps].sort()).toEqual(["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"]);
    const p = agent(config("caps"), daemonSetCaps);
    await p.waitFor(/\brunning\b/, 20_000);
    // The agent really runs with that set and no more: NET_BIND_SERVICE 10, NET_ADMIN 12, NET_RAW 13.
    // (ip netns exec and setpriv both exec, so the spawned pid is the agent's.)
    const status = (await n1.must(["cat", `/proc/${pidOf(p)}/status`])).stdout;
    expect(/^CapEff:\s*(\S+)$/m.exec(status)?.[1]).toBe("0000000000003400");
    const dig = await n1.must(["dig", "+short", "+time=2", "+tries=1", "@169.254.96.16", "web.default.svc.cluster.local"]);
    expect(dig.stdout.trim()).toBe("10.96.0.10");
    const curl = await n1.must(["curl", "-sS", "--max-time", "3", "http://10.96.0.10/"]);
    expect(curl.stdout).toBe("web-on-n1");
    expect(await p.kill("SIGTERM")).toBe(0);
    await expectClean();
  }, 60_000);

  test("without NET_ADMIN it stops before creating anything, naming the capability", async () => {
    const p = agent(config("no-admin"), daemonSetCaps.filter((c) => c !== "NET_ADMIN"));
    const { code, line } = await failed(p);
    expect(code).toBe(1);
    expect(line).toContain("missing the capability NET_ADMIN (the edgemesh0 device, iptables rules and conntrack)");
    expect(line).toContain("capabilities.add: [NET_ADMIN]");
    await expectClean();
  }, 30_000);

  test("DNS port taken: one line with the address, modules.edgeDNS.listenPort and the holder; device removed", async () => {
    const holder = await holdTcp("0.0.0.0", 53);
    const p = agent(config("dns-taken"));
    const { code, line } = await failed(p);
    expect(code).toBe(1);
    expect(line).toContain("cannot listen on 169.254.96.16:53 for DNS (modules.edgeDNS.listenPort): the address is in use");
    expect(line).toContain(`held by socat (pid ${pidOf(holder)}, tcp)`);
    await holder.kill("SIGKILL");
    await expectClean();
  }, 30_000);

  test("tunnel port taken: one line naming modules.edgeTunnel.listenPort and the holder; device and listeners removed", async () => {
    const holder = await holdTcp("0.0.0.0", 20006);
    const p = agent(config("tunnel-taken", true));
    const { code, line } = await failed(p);
    expect(code).toBe(1);
    expect(line).toContain("(modules.edgeTunnel.listenPort): the address is in use");
    expect(line).toContain(`held by socat (pid ${pidOf(holder)}, tcp)`);
    await holder.kill("SIGKILL");
    await expectClean();
  }, 30_000);

  test("admin address taken after the rules are in: chains, jumps, device and listeners all removed", async () => {
    const holder = await holdTcp("127.0.0.1", 10551);
    const p = agent(config("admin-taken"));
    const { code, line, output } = await failed(p);
    expect(code).toBe(1);
    expect(line).toBe(
      `cannot listen on 127.0.0.1:10551 for the admin endpoint (commonConfig.adminAddress): the address is in use, held by socat (pid ${pidOf(holder)}, tcp). Stop that process or set commonConfig.adminAddress to a free one.`,
    );
    // The rules had been applied before the failure, and were taken out again.
    expect(output.indexOf("jumps installed")).toBeGreaterThan(-1);
    expect(output.indexOf("iptables rules removed")).toBeGreaterThan(output.indexOf("jumps installed"));
    await holder.kill("SIGKILL");
    await expectClean();
  }, 30_000);

  test("metrics port taken (the last listener): one line naming modules.edgeTunnel.metricConfig.port; the admin endpoint closed again", async () => {
    const holder = await holdTcp("0.0.0.0", 9999);
    const p = agent(config("metrics-taken", false, 9999));
    const { code, line } = await failed(p);
    expect(code).toBe(1);
    expect(line).toBe(
      `cannot listen on 0.0.0.0:9999 for the metrics listener (modules.edgeTunnel.metricConfig.port): the address is in use, held by socat (pid ${pidOf(holder)}, tcp). Stop that process or set modules.edgeTunnel.metricConfig.port to a free one.`,
    );
    await holder.kill("SIGKILL");
    await expectClean();
  }, 30_000);
});
