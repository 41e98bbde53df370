import { describe, expect, test } from "bun:test";
import { createManualClock } from "../../src/control/index.ts";
import { createIptablesSyncer, ensureJumps, findProblems, removeJumps, renderRules } from "../../src/iptables/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { createFakeIptables } from "../support/testbed/fake-iptables.ts";
import { trace } from "../support/testbed/iptables-trace.ts";
import { listenersFor, tableOf } from "../support/testbed/tables.ts";

const t1 = tableOf(1, [{ name: "web", port: 80, clusterIPs: ["10.96.0.10"] }]);
const t2 = tableOf(2, [
  { name: "web", port: 80, clusterIPs: ["10.96.0.10"] },
  { name: "api", port: 8080, clusterIPs: ["10.96.0.11"] },
]);

function setup(initial?: string) {
  const exec = createFakeIptables(initial);
  const clock = createManualClock(1_000_000);
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const syncer = createIptablesSyncer({ exec, clock, log, metrics, minIntervalMs: 200, resyncIntervalMs: 60_000, checkIntervalMs: 2_000 });
  const step = async (ms: number) => {
    clock.advance(ms);
    await syncer.idle();
    // A finished apply may have scheduled another one for "now".
    clock.advance(0);
    await syncer.idle();
  };
  const dnat = (dst: string, dport: number, hook: "PREROUTING" | "OUTPUT" = "PREROUTING") =>
    trace(exec.chains, { hook, dst, dport, proto: "tcp" }, () => false).dnat;
  return { exec, clock, log, metrics, syncer, step, dnat };
}

describe("iptables syncer", () => {
  test("the first update is applied and the jumps are inserted once, first in their chains", async () => {
    const { exec, syncer, step, dnat } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    expect(dnat("10.96.0.10", 80)).toBe("169.254.96.16:40000");
    expect(dnat("10.96.0.10", 80, "OUTPUT")).toBe("169.254.96.16:40000");
    expect(await findProblems(exec)).toEqual([]);
    expect(syncer.status().appliedVersion).toBe(1);
  });

  test("a burst of updates inside the minimum interval becomes one more apply with the last state", async () => {
    const { exec, syncer, step, dnat } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    const before = exec.restores.length;
    for (let i = 0; i < 20; i++) syncer.update(i % 2 ? t1 : t2, listenersFor(i % 2 ? t1 : t2));
    syncer.update(t2, listenersFor(t2));
    await step(50);
    expect(exec.restores.length).toBe(before);
    await step(200);
    expect(exec.restores.length).toBe(before + 1);
    // Listener ports follow key order: api (40000) sorts before web (40001).
    expect(dnat("10.96.0.11", 8080)).toBe("169.254.96.16:40000");
    expect(dnat("10.96.0.10", 80)).toBe("169.254.96.16:40001");
  });

  test("an update that renders the same text is not re-applied", async () => {
    const { exec, syncer, step } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    const before = exec.restores.length;
    syncer.update(tableOf(7, [{ name: "web", port: 80, clusterIPs: ["10.96.0.10"] }]), listenersFor(t1));
    await step(500);
    expect(exec.restores.length).toBe(before);
  });

  test("the periodic resync re-applies even without changes", async () => {
    const { exec, syncer, step } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    const before = exec.restores.length;
    await step(60_000);
    expect(exec.restores.length).toBeGreaterThan(before);
  });

  test("a failed apply is logged with iptables' message, keeps the old rules and is retried with backoff", async () => {
    const { exec, syncer, step, dnat, log, metrics } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    exec.failRestores(2, "iptables-restore: line 7 failed");
    syncer.update(t2, listenersFor(t2));
    await step(200);
    expect(dnat("10.96.0.10", 80)).toBe("169.254.96.16:40000");
    expect(dnat("10.96.0.11", 8080)).toBeNull();
    expect(log.lines.some((l) => l.includes("ERROR") && l.includes("line 7 failed"))).toBe(true);
    expect(syncer.status().consecutiveFailures).toBe(1);
    await step(1_000); // first retry after 1 s fails too
    expect(syncer.status().consecutiveFailures).toBe(2);
    const attempts = exec.restores.length;
    await step(1_500); // second retry waits 2 s
    expect(exec.restores.length).toBe(attempts);
    await step(600);
    expect(exec.restores.length).toBe(attempts + 1);
    expect(dnat("10.96.0.11", 8080)).toBe("169.254.96.16:40000");
    expect(syncer.status().consecutiveFailures).toBe(0);
    expect(metrics.snapshot()['iptables_sync_total{result="error"}']).toBe(2);
    // Only the successful applies are timed and stamped (the clock is the manual one).
    const snap = metrics.snapshot();
    expect(snap["iptables_sync_duration_seconds_count"]).toBe(snap['iptables_sync_total{result="ok"}']!);
    expect(snap["iptables_last_sync_timestamp_seconds"]).toBe(1_000_000 / 1000 + (200 + 1_000 + 1_500 + 600) / 1000);
  });

  test("a chain flushed by someone else is noticed by the check and repaired", async () => {
    const { exec, syncer, step, dnat, metrics } = setup();
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    await exec.run(["-t", "nat", "-F", "EDGEMESH-PORTALS-CONTAINER"]);
    expect(dnat("10.96.0.10", 80)).toBeNull();
    await step(2_000);
    await step(200);
    expect(dnat("10.96.0.10", 80)).toBe("169.254.96.16:40000");
    expect(metrics.snapshot()["iptables_repairs_total"]).toBe(1);
  });

  test("a deleted jump and a jump pushed down by another tool are both put back first", async () => {
    const { exec, syncer, step } = setup("*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n");
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    await exec.run(["-t", "nat", "-D", "OUTPUT", "-m", "comment", "--comment", "edgemesh service portals", "-j", "EDGEMESH-PORTALS-HOST"]);
    await exec.run(["-t", "nat", "-I", "PREROUTING", "1", "-j", "KUBE-SERVICES"]);
    expect((await findProblems(exec)).length).toBe(2);
    await step(2_000);
    await step(200);
    expect(await findProblems(exec)).toEqual([]);
    expect(exec.chains.get("PREROUTING")!.map((r) => r.at(-1))).toEqual(["EDGEMESH-PORTALS-CONTAINER", "KUBE-SERVICES"]);
  });

  test("after a kill -9, stale chains and duplicated jumps are replaced, not added to", async () => {
    const stale = [
      "*nat",
      ":PREROUTING ACCEPT [0:0]",
      ":OUTPUT ACCEPT [0:0]",
      ":KUBE-SERVICES - [0:0]",
      ":EDGEMESH-PORTALS-CONTAINER - [0:0]",
      ":EDGEMESH-PORTALS-HOST - [0:0]",
      ":EDGEMESH-NODEPORT-CONTAINER - [0:0]",
      "-A PREROUTING -m comment --comment \"edgemesh service portals\" -j EDGEMESH-PORTALS-CONTAINER",
      "-A PREROUTING -j KUBE-SERVICES",
      "-A PREROUTING -m comment --comment \"edgemesh service portals\" -j EDGEMESH-PORTALS-CONTAINER",
      "-A PREROUTING -m addrtype --dst-type LOCAL -j EDGEMESH-NODEPORT-CONTAINER",
      "-A OUTPUT -m comment --comment \"handle ClusterIPs\" -j EDGEMESH-PORTALS-HOST",
      "-A EDGEMESH-PORTALS-CONTAINER -d 10.96.9.9/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 169.254.96.16:1111",
      "COMMIT",
    ].join("\n");
    const { exec, syncer, step, dnat } = setup(stale);
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    await step(0);
    expect(dnat("10.96.9.9", 80)).toBeNull();
    expect(dnat("10.96.0.10", 80)).toBe("169.254.96.16:40000");
    const pre = exec.chains.get("PREROUTING")!.map((r) => r.at(-1));
    expect(pre).toEqual(["EDGEMESH-PORTALS-CONTAINER", "KUBE-SERVICES"]);
    expect(exec.chains.get("OUTPUT")!.map((r) => r.at(-1))).toEqual(["EDGEMESH-PORTALS-HOST"]);
  });

  test("stop removes our jumps and chains and leaves other rules alone", async () => {
    const { exec, syncer, step } = setup("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n");
    syncer.start();
    syncer.update(t2, listenersFor(t2));
    await step(0);
    await syncer.stop();
    expect([...exec.chains.keys()].filter((c) => c.startsWith("EDGEMESH"))).toEqual([]);
    expect(exec.chains.get("PREROUTING")).toEqual([["-j", "KUBE-SERVICES"]]);
    expect(exec.chains.get("OUTPUT")).toEqual([]);
    const n = exec.restores.length;
    syncer.update(t1, listenersFor(t1));
    await step(1_000);
    expect(exec.restores.length).toBe(n);
  });

  test("expensive checks (huge chains) are spaced out so checking takes at most a tenth of the time", async () => {
    const exec = createFakeIptables();
    const manual = createManualClock(0);
    let spent = 0;
    // Each iptables call "takes" 100 ms of the clock the syncer reads.
    const clock = { ...manual, now: () => manual.now() + spent };
    let checks = 0;
    const slow = {
      ...exec,
      backend: exec.backend,
      restore: (t: string) => exec.restore(t),
      run: (args: readonly string[]) => {
        spent += 100;
        if (args.includes("-C")) checks++;
        return exec.run(args);
      },
    };
    const syncer = createIptablesSyncer({ exec: slow, clock, log: createMemoryLogger(), metrics: createMetrics(), minIntervalMs: 200, resyncIntervalMs: 0, checkIntervalMs: 2_000 });
    syncer.start();
    syncer.update(t1, listenersFor(t1));
    manual.advance(0);
    await syncer.idle();
    const step = async (ms: number) => {
      manual.advance(ms);
      await syncer.idle();
    };
    await step(2_000); // first check: 6 calls, 600 ms
    expect(checks).toBe(4);
    await step(2_000);
    expect(checks).toBe(4); // the next one waits 10 x 600 ms
    await step(4_000);
    expect(checks).toBe(8);
    await syncer.stop();
  });

  test("UDP flows are forgotten for every UDP destination on the first apply, then only where the target moved", async () => {
    const exec = createFakeIptables(undefined, { conntrack: true });
    const clock = createManualClock(0);
    const syncer = createIptablesSyncer({ exec, clock, log: createMemoryLogger(), metrics: createMetrics(), minIntervalMs: 0, resyncIntervalMs: 0, checkIntervalMs: 0 });
    const t = tableOf(1, [
      { name: "dns", port: 53, protocol: "UDP", clusterIPs: ["10.96.0.53"], nodePort: 30053 },
      { name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.7"] },
      { name: "web", port: 80, clusterIPs: ["10.96.0.10"] },
    ]);
    const l = listenersFor(t);
    const run = async () => {
      clock.advance(0);
      await syncer.idle();
    };
    syncer.start();
    syncer.update(t, l);
    await run();
    expect(exec.conntrackCalls.map((a) => a.join(" "))).toEqual([
      "-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53",
      "-D -p udp --orig-dst 10.96.0.7 --orig-port-dst 7",
      "-D -p udp --orig-port-dst 30053",
    ]);
    exec.conntrackCalls.length = 0;
    // echo's listener moves, web's (TCP) too; dns stays.
    const moved = new Map(l);
    moved.set("default/echo:7/UDP", { host: "169.254.96.16", port: 50007, protocol: "UDP" });
    moved.set("default/web:80/TCP", { host: "169.254.96.16", port: 50080, protocol: "TCP" });
    syncer.update(tableOf(2, [...t.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, clusterIPs: [...p.clusterIPs], nodePort: p.nodePort }))]), moved);
    await run();
    expect(exec.conntrackCalls.map((a) => a.join(" "))).toEqual(["-D -p udp --orig-dst 10.96.0.7 --orig-port-dst 7"]);
    exec.conntrackCalls.length = 0;
    // dns deleted: its flows go too.
    syncer.update(tableOf(3, [{ name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.7"] }]), moved);
    await run();
    expect(exec.conntrackCalls.map((a) => a.join(" "))).toEqual(["-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53", "-D -p udp --orig-port-dst 30053"]);
    await syncer.stop();
  });

  test("without the conntrack tool the syncer warns once and carries on", async () => {
    const exec = createFakeIptables();
    const clock = createManualClock(0);
    const log = createMemoryLogger();
    const syncer = createIptablesSyncer({ exec, clock, log, metrics: createMetrics(), minIntervalMs: 0, resyncIntervalMs: 0, checkIntervalMs: 0 });
    const t = tableOf(1, [{ name: "echo", port: 7, protocol: "UDP", clusterIPs: ["10.96.0.7"] }]);
    syncer.start();
    syncer.update(t, listenersFor(t));
    clock.advance(0);
    await syncer.idle();
    syncer.update(t, listenersFor(t, "169.254.96.16", 41000));
    clock.advance(0);
    await syncer.idle();
    expect(log.lines.filter((l) => l.includes("conntrack tool not installed")).length).toBe(1);
    expect(syncer.status().appliedVersion).toBe(1);
    expect(trace(exec.chains, { hook: "PREROUTING", dst: "10.96.0.7", dport: 7, proto: "udp" }, () => false).dnat).toBe("169.254.96.16:41000");
    await syncer.stop();
  });

  test("ensureJumps and removeJumps are idempotent", async () => {
    const exec = createFakeIptables();
    await exec.restore(renderRules({ table: t1, listeners: listenersFor(t1) }));
    expect((await ensureJumps(exec)).length).toBe(2);
    expect(await ensureJumps(exec)).toEqual([]);
    expect(await removeJumps(exec)).toBe(2);
    expect(await removeJumps(exec)).toBe(0);
  });
});
