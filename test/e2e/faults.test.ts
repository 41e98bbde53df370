// Faults with a live agent: an endpoint dies under load, the agent is killed -9 and restarted,
// manifests change while traffic flows, and someone flushes our iptables chain.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oneLan, type Pod, type TestNode } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { join } from "node:path";
import { BUN, CLIENT, createCluster, serviceYaml, until, type Agent, type Cluster, type ServiceSpec } from "./harness.ts";

const PROBE = join(import.meta.dir, "../support/apps/probe.ts");

describe("e2e: faults", () => {
  let c: Cluster;
  let n1: TestNode;
  let client: Pod;
  let agent: Agent;
  const apps = new Map<string, Watched>();
  const endpoints = [0, 1, 2].map((i) => ({ ip: `10.244.1.${10 + i}`, node: "n1", name: `web${i}` }));
  const web = (eps = endpoints): ServiceSpec => ({ name: "web", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: eps });

  beforeAll(async () => {
    c = await createCluster(oneLan(1));
    n1 = c.node("n1");
    for (const e of endpoints) apps.set(e.name, await c.startApp(await n1.addPod(e.name, e.ip)));
    client = await n1.addPod("client", "10.244.1.100");
    c.writeManifest("web.yaml", serviceYaml(web()));
    c.writeManifest(
      "echo.yaml",
      serviceYaml({ name: "echo", clusterIP: "10.96.0.20", ports: [{ name: "udp", port: 7, targetPort: 9001, protocol: "UDP" }], endpoints: [endpoints[0]!] }),
    );
    agent = await c.startAgent("n1");
    await until(async () => ok(await get("http://10.96.0.10/")), 5000);
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  // Before a rule exists a SYN to a service IP goes unanswered, so polls use a short timeout: a
  // long one would be counted as reaction time.
  const get = (url: string, maxTime = "0.25") => client.exec(["curl", "-s", "--max-time", maxTime, "-o", "/dev/null", "-w", "%{http_code}", url]);
  const ok = (r: { stdout: string }) => r.stdout === "200";
  /** 10 requests/s from the client pod for `seconds`, in the background. */
  const steadyLoad = (seconds: number) =>
    client.exec([BUN, CLIENT, "--host", "10.96.0.10", "--count", String(seconds * 10), "--rate", "10", "--concurrency", "4", "--timeout", "3000"], { timeoutMs: (seconds + 10) * 1000 }).then((r) => JSON.parse(r.stdout) as { ok: number; failed: number; errors: string[] });
  const natRules = async () => (await n1.must(["iptables-save", "-t", "nat"])).stdout;

  test("an endpoint killed while a client sends 10 requests/s: no request fails", async () => {
    const running = steadyLoad(6);
    await Bun.sleep(2000);
    await apps.get("web1")!.kill("SIGKILL");
    // Kubernetes would drop the dead pod from the EndpointSlice a moment later.
    await Bun.sleep(1000);
    c.writeManifest("web.yaml", serviceYaml(web(endpoints.filter((e) => e.name !== "web1"))));
    const r = await running;
    console.log("endpoint killed under 10 req/s:", JSON.stringify({ ok: r.ok, failed: r.failed }));
    expect(r.errors).toEqual([]);
    expect(r.failed).toBe(0);
    expect(r.ok).toBe(60);
  }, 30_000);

  test("agent killed -9 under load and restarted: no duplicated rules, service back within 2 s", async () => {
    const running = steadyLoad(8);
    // A UDP flow that never pauses: its conntrack entry would pin it to the dead agent's port.
    const udpFlow = client.exec([BUN, PROBE, "udpflow", "10.96.0.20", "7", "120", "50"], { timeoutMs: 30_000 });
    await Bun.sleep(1500);
    agent.proc.proc.kill("SIGKILL");
    await agent.proc.proc.exited;
    const restartAt = Date.now();
    agent = await c.startAgent("n1");
    const back = await until(async () => ok(await get("http://10.96.0.10/")), 5000, 20);
    const tookMs = Date.now() - restartAt;
    console.log(`agent restart -> service answering: ${tookMs} ms`);
    expect(back).toBe(true);
    expect(tookMs).toBeLessThanOrEqual(2000);
    const rules = (await natRules()).split("\n");
    expect(rules.filter((l) => l.startsWith("-A PREROUTING") && l.includes("EDGEMESH")).length).toBe(1);
    expect(rules.filter((l) => l.startsWith("-A OUTPUT") && l.includes("EDGEMESH")).length).toBe(1);
    expect(rules.filter((l) => l.includes("-d 10.96.0.10/32") && l.includes("EDGEMESH-PORTALS-CONTAINER")).length).toBe(1);
    const r = await running;
    // Requests during the gap may fail; the ones after the restart must not.
    expect(r.ok).toBeGreaterThan(0);
    const flow = JSON.parse((await udpFlow).stdout) as { answered: string };
    console.log("UDP flow across the restart (1 = echoed):", flow.answered);
    expect(flow.answered.startsWith("1")).toBe(true);
    expect(flow.answered.endsWith("1111111111")).toBe(true);
  }, 40_000);

  test("manifest edits (service added, port changed, service deleted) take effect within a second", async () => {
    const added = serviceYaml({ name: "late", clusterIP: "10.96.0.30", ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [endpoints[0]!] });
    const timings: Record<string, number> = {};
    let t = Date.now();
    c.writeManifest("late.yaml", added);
    expect(await until(async () => ok(await get("http://10.96.0.30/")), 3000, 20)).toBe(true);
    timings.added = Date.now() - t;
    expect(timings.added).toBeLessThanOrEqual(1000);

    t = Date.now();
    c.writeManifest("late.yaml", added.replace("port: 80,", "port: 8081,"));
    expect(await until(async () => ok(await get("http://10.96.0.30:8081/")), 3000, 20)).toBe(true);
    timings.portChanged = Date.now() - t;
    expect(timings.portChanged).toBeLessThanOrEqual(1000);
    expect(ok(await get("http://10.96.0.30/"))).toBe(false);

    // A deleted service's traffic is not refused but goes unanswered (nothing owns the IP), so
    // "gone" is timed on the rules, then traffic is checked once.
    t = Date.now();
    c.removeManifest("late.yaml");
    expect(await until(async () => !(await natRules()).includes("10.96.0.30"), 3000, 20)).toBe(true);
    timings.deleted = Date.now() - t;
    expect(timings.deleted).toBeLessThanOrEqual(1000);
    expect(ok(await get("http://10.96.0.30:8081/"))).toBe(false);
    console.log("manifest edit -> effect (ms)", JSON.stringify(timings));
  }, 30_000);

  test("our chain flushed by someone else is repaired", async () => {
    await n1.must(["iptables", "-t", "nat", "-F", "EDGEMESH-PORTALS-CONTAINER"]);
    const t = Date.now();
    expect(ok(await get("http://10.96.0.10/"))).toBe(false);
    expect(await until(async () => ok(await get("http://10.96.0.10/")), 10_000, 100)).toBe(true);
    console.log(`flushed chain repaired after ${Date.now() - t} ms`);
    expect((await natRules()).split("\n").filter((l) => l.startsWith("-A PREROUTING") && l.includes("EDGEMESH")).length).toBe(1);
  }, 20_000);

  test("SIGTERM after a restart removes every chain and jump; service traffic stops", async () => {
    const code = await agent.proc.kill("SIGTERM");
    expect(code).toBe(0);
    expect(await natRules()).not.toContain("EDGEMESH");
    // The restarted agent found the device left by the killed one, so it is not its to remove;
    // what matters is that no rule points at it any more.
    expect(ok(await get("http://10.96.0.10/"))).toBe(false);
  }, 20_000);
});
