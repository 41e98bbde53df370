// Real iptables inside throwaway network namespaces: rules applied by the syncer are read back
// with iptables-save and traced, and real connections to a cluster IP land on a listener on the
// bridge address. Nothing here touches the root namespace.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ensureBridge, removeBridge } from "../../src/host/index.ts";
import {
  createIptablesExec,
  createIptablesSyncer,
  detectIptablesBackend,
  findProblems,
  type IptablesExec,
  type IptablesSyncer,
} from "../../src/iptables/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { BRIDGE_IP, createScratchNamespace, type Place } from "../support/netns.ts";
import { parseNat, trace } from "../support/testbed/iptables-trace.ts";
import { listenersFor, tableOf } from "../support/testbed/tables.ts";

const APP = new URL("../support/apps/server.ts", import.meta.url).pathname;
/** Where "kube-proxy" sends the web service: nothing listens there. */
const KUBE_TARGET = "10.244.9.9:80";
const t1 = tableOf(1, [
  { name: "web", port: 80, clusterIPs: ["10.96.0.10"], nodePort: 30080 },
  { name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.11"] },
]);
const t2 = tableOf(2, [
  { name: "web", port: 80, clusterIPs: ["10.96.0.10"], nodePort: 30080 },
  { name: "web2", port: 8080, clusterIPs: ["10.96.0.12"] },
]);

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await Bun.sleep(50);
  }
  return cond();
}

function syncerFor(exec: IptablesExec) {
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const syncer = createIptablesSyncer({ exec, log, metrics, minIntervalMs: 20, resyncIntervalMs: 60_000, checkIntervalMs: 200 });
  return { syncer, log, metrics };
}

for (const backend of ["nft", "legacy"] as const) {
  describe(`iptables (${backend}) in a network namespace`, () => {
    let ns: Place & { destroy(): Promise<void> };
    let exec: IptablesExec;
    let prefix: string[];
    const syncers: IptablesSyncer[] = [];
    const save = async () => (await ns.must([backend === "nft" ? "iptables-nft-save" : "iptables-legacy-save", "-t", "nat"])).stdout;
    const dnat = async (hook: "PREROUTING" | "OUTPUT", dst: string, dport: number, proto: "tcp" | "udp" = "tcp") =>
      trace(parseNat(await save()), { hook, dst, dport, proto }, (ip) => ip === BRIDGE_IP || ip === "10.10.0.11" || ip.startsWith("127.")).dnat;

    beforeAll(async () => {
      ns = await createScratchNamespace(`ipt${backend}`);
      prefix = ["ip", "netns", "exec", ns.ns];
      expect((await ensureBridge("edgemesh0", BRIDGE_IP, { prefix })).created).toBe(true);
      await ns.must(["ip", "addr", "add", "10.10.0.11/24", "dev", "edgemesh0"]);
      // A route for service IPs so connect() gets as far as OUTPUT (DNAT then re-routes locally).
      await ns.must(["ip", "route", "add", "10.96.0.0/12", "dev", "edgemesh0"]);
      // Someone else's rules that must survive everything we do.
      const bin = backend === "nft" ? "iptables-nft" : "iptables-legacy";
      await ns.must([bin, "-t", "nat", "-N", "KUBE-SERVICES"]);
      await ns.must([bin, "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]);
      await ns.must([bin, "-t", "nat", "-A", "OUTPUT", "-j", "KUBE-SERVICES"]);
      // kube-proxy's own rule for the same service (hybrid proxy): ours must be seen first.
      await ns.must([bin, "-t", "nat", "-A", "KUBE-SERVICES", "-d", "10.96.0.10/32", "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", KUBE_TARGET]);
      exec = createIptablesExec(backend, { prefix });
    });

    afterAll(async () => {
      for (const s of syncers) await s.stop();
      await ns?.destroy();
    });

    test("detection picks the backend that holds the rules", async () => {
      expect(await detectIptablesBackend({ prefix })).toBe(backend);
    });

    test("the bridge device is idempotent: a second ensure finds it", async () => {
      expect((await ensureBridge("edgemesh0", BRIDGE_IP, { prefix })).created).toBe(false);
      const addrs = (await ns.must(["ip", "-o", "addr", "show", "dev", "edgemesh0"])).stdout;
      expect(addrs.split("\n").filter((l) => l.includes(`${BRIDGE_IP}/32`)).length).toBe(1);
    });

    test("applied rules send cluster IP and NodePort traffic to the listeners, first in line", async () => {
      const { syncer } = syncerFor(exec);
      syncers.push(syncer);
      syncer.start();
      syncer.update(t1, listenersFor(t1));
      expect(await until(async () => syncer.status().appliedVersion === 1, 5000)).toBe(true);
      const l = listenersFor(t1);
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(`${BRIDGE_IP}:${l.get("default/web:80/TCP")!.port}`);
      expect(await dnat("OUTPUT", "10.96.0.11", 7, "udp")).toBe(`${BRIDGE_IP}:${l.get("default/echo:7/UDP")!.port}`);
      expect(await dnat("OUTPUT", "10.10.0.11", 30080)).toBe(`${BRIDGE_IP}:${l.get("default/web:80/TCP")!.port}`);
      const text = await save();
      expect(text.split("\n").filter((x) => x.startsWith("-A PREROUTING"))[0]).toContain("-j EDGEMESH-PORTALS-CONTAINER");
      expect(text.split("\n").filter((x) => x.startsWith("-A OUTPUT"))[0]).toContain("-j EDGEMESH-PORTALS-HOST");
      expect(text).toContain("-A PREROUTING -j KUBE-SERVICES");
      expect(await findProblems(exec)).toEqual([]);
    });

    test("a real TCP connection to the cluster IP reaches our listener, not kube-proxy's target", async () => {
      const port = listenersFor(t1).get("default/web:80/TCP")!.port;
      const app = ns.spawn(["bun", APP, "--name", "listener", "--ip", BRIDGE_IP, "--http", String(port)]);
      await app.waitFor(/ready/);
      const res = await ns.exec(["curl", "-s", "--max-time", "3", "http://10.96.0.10/"]);
      expect(res.stdout).toBe("listener");
      const viaNodePort = await ns.exec(["curl", "-s", "--max-time", "3", "http://10.10.0.11:30080/"]);
      expect(viaNodePort.stdout).toBe("listener");
      await app.kill("SIGKILL");
    });

    test("a flush of our chain by someone else is repaired", async () => {
      const bin = backend === "nft" ? "iptables-nft" : "iptables-legacy";
      await ns.must([bin, "-t", "nat", "-F", "EDGEMESH-PORTALS-CONTAINER"]);
      await ns.must([bin, "-t", "nat", "-D", "OUTPUT", "-m", "comment", "--comment", "edgemesh service portals", "-j", "EDGEMESH-PORTALS-HOST"]);
      // With our chain empty, kube-proxy's rule takes the traffic, as it would without us.
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(KUBE_TARGET);
      const ours = `${BRIDGE_IP}:${listenersFor(t1).get("default/web:80/TCP")!.port}`;
      // The chain is refilled first, the jump re-inserted right after: wait for both.
      expect(await until(async () => (await findProblems(exec)).length === 0, 5000)).toBe(true);
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(ours);
      expect(await dnat("OUTPUT", "10.96.0.10", 80)).toBe(ours);
    });

    test("a failed apply reports iptables' error and leaves the last good rules working", async () => {
      const broken: IptablesExec = { ...exec, restore: (text) => exec.restore(text.replace("COMMIT", "-A EDGEMESH-PORTALS-HOST -j NO-SUCH-CHAIN\nCOMMIT")) };
      const { syncer, log } = syncerFor(broken);
      syncer.start();
      syncer.update(t2, listenersFor(t2));
      expect(await until(async () => syncer.status().consecutiveFailures > 0, 5000)).toBe(true);
      await syncer.idle();
      expect(syncer.status().lastError).toContain("iptables");
      expect(log.lines.some((l) => l.includes("ERROR") && l.includes("last good rules"))).toBe(true);
      // t1's rules are still in place, t2's new service is not.
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(`${BRIDGE_IP}:${listenersFor(t1).get("default/web:80/TCP")!.port}`);
      expect(await dnat("PREROUTING", "10.96.0.12", 8080)).toBeNull();
      // Stop it without cleanup: its rules stay as after a crash, which the next test recovers from.
      await syncer.stop({ removeRules: false });
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(`${BRIDGE_IP}:${listenersFor(t1).get("default/web:80/TCP")!.port}`);
    });

    test("a new syncer after a crash replaces stale rules without duplicating jumps", async () => {
      const { syncer } = syncerFor(exec);
      syncers.push(syncer);
      syncer.start();
      syncer.update(t2, listenersFor(t2));
      expect(await until(async () => syncer.status().appliedVersion === 2, 5000)).toBe(true);
      const text = await save();
      expect(text.split("\n").filter((x) => x.includes("-j EDGEMESH-PORTALS-CONTAINER")).length).toBe(1);
      expect(text.split("\n").filter((x) => x.includes("-j EDGEMESH-PORTALS-HOST")).length).toBe(1);
      expect(await dnat("PREROUTING", "10.96.0.12", 8080)).toBe(`${BRIDGE_IP}:${listenersFor(t2).get("default/web2:8080/TCP")!.port}`);
      expect(await dnat("PREROUTING", "10.96.0.11", 7, "udp")).toBeNull();
    });

    test("a UDP flow that keeps sending follows its service to a new listener (conntrack cleared)", async () => {
      const { syncer } = syncerFor(exec);
      syncers.push(syncer);
      const udp = tableOf(5, [{ name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.11"] }]);
      const at = (port: number) => new Map([["default/echo:7/UDP", { host: BRIDGE_IP, port, protocol: "UDP" as const }]]);
      const named = (name: string, port: number) =>
        ns.spawn(["bun", "-e", `await Bun.udpSocket({ hostname: "${BRIDGE_IP}", port: ${port}, socket: { data(s, d, p, a) { s.send("${name}", p, a); } } }); console.log("ready");`]);
      const a = named("A", 41001);
      const b = named("B", 41002);
      await Promise.all([a.waitFor(/ready/), b.waitFor(/ready/)]);
      syncer.start();
      syncer.update(udp, at(41001));
      expect(await until(async () => syncer.status().appliedVersion === 5, 5000)).toBe(true);
      // One client socket (one conntrack flow), a datagram every 50 ms for 2 s.
      const client = ns.spawn(["bun", "-e", `
        const got = [];
        const s = await Bun.udpSocket({ port: 40999, socket: { data(_s, d) { got.push(Buffer.from(d).toString()); } } });
        for (let i = 0; i < 40; i++) { s.send("x", 7, "10.96.0.11"); await Bun.sleep(50); }
        console.log("result " + JSON.stringify(got));`]);
      await Bun.sleep(700);
      syncer.update(tableOf(6, [{ name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.11"] }]), at(41002));
      const got = JSON.parse((await client.waitFor(/result (.*)/, 10_000))[1]!) as string[];
      expect(got[0]).toBe("A");
      expect(got.at(-1)).toBe("B");
      expect(got.indexOf("A", got.indexOf("B"))).toBe(-1);
      await syncer.stop();
      syncers.splice(syncers.indexOf(syncer), 1);
      await a.kill("SIGKILL");
      await b.kill("SIGKILL");
    });

    test("stop removes our chains and jumps and nothing else; the device can be removed", async () => {
      for (const s of syncers.splice(0)) await s.stop();
      const text = await save();
      expect(text).not.toContain("EDGEMESH");
      expect(text).toContain("-A PREROUTING -j KUBE-SERVICES");
      expect(text).toContain("-A OUTPUT -j KUBE-SERVICES");
      expect(await dnat("PREROUTING", "10.96.0.10", 80)).toBe(KUBE_TARGET);
      await removeBridge("edgemesh0", { prefix });
      expect((await ns.exec(["ip", "link", "show", "edgemesh0"])).code).not.toBe(0);
      await removeBridge("edgemesh0", { prefix });
    });
  });
}
