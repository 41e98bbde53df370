// The test bed itself: topology wiring, per-namespace resolv.conf, teardown and the sweep of dead
// runs, and that the root namespace sees no new interfaces.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { createTestbed, oneLan, RESOLV_CONF, type Pod, type Testbed } from "../support/netns.ts";
import { listNamespaces, sweepStale } from "../support/testbed/names.ts";
import { must, run } from "../support/testbed/sh.ts";

const APP = new URL("../support/apps/server.ts", import.meta.url).pathname;

describe("netns test bed", () => {
  let bed: Testbed;
  let pods: Pod[];
  let rootLinksBefore = "";

  beforeAll(async () => {
    rootLinksBefore = (await must(["ip", "-o", "link", "show"])).stdout.replace(/\s+link\/.*$/gm, "");
    bed = await createTestbed(oneLan(2));
    pods = [await bed.node("n1").addPod("a", "10.244.1.10"), await bed.node("n1").addPod("b", "10.244.1.11")];
  }, 30_000);

  afterAll(async () => {
    await bed?.destroy();
  });

  /** Start the test app on `ip` in a place and fetch its name from another place. */
  async function reach(from: Pick<Pod, "exec">, to: Pick<Pod, "spawn">, ip: string, name: string): Promise<string> {
    const app = to.spawn([process.execPath, APP, "--name", name, "--ip", ip, "--http", "8080"]);
    await app.waitFor(/ready/);
    const r = await from.exec(["curl", "-s", "--max-time", "2", `http://${ip}:8080/`]);
    await app.kill("SIGKILL");
    return r.stdout;
  }

  test("nodes reach each other over their LAN", async () => {
    expect(await reach(bed.node("n1"), bed.node("n2"), "10.10.0.12", "n2")).toBe("n2");
  });

  test("pods reach their node and each other; the node reaches its pods", async () => {
    expect(await reach(pods[0]!, bed.node("n1"), "10.244.1.1", "gw")).toBe("gw");
    expect(await reach(pods[0]!, pods[1]!, "10.244.1.11", "b")).toBe("b");
    expect(await reach(bed.node("n1"), pods[0]!, "10.244.1.10", "a")).toBe("a");
  });

  test("nodes and pods see the bed's resolv.conf (nameserver = bridge IP)", async () => {
    expect((await pods[1]!.must(["cat", "/etc/resolv.conf"])).stdout).toBe(RESOLV_CONF);
    expect((await bed.node("n2").must(["cat", "/etc/resolv.conf"])).stdout).toBe(RESOLV_CONF);
  });

  test("nothing was added to the root namespace's interfaces", async () => {
    const now = (await must(["ip", "-o", "link", "show"])).stdout.replace(/\s+link\/.*$/gm, "");
    expect(now).toBe(rootLinksBefore);
  });

  test("a process spawned on a node runs inside that node's namespace", async () => {
    const p = bed.node("n2").spawn(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    await p.waitFor(/10\.10\.0\.12/);
    expect(p.output()).toContain("10.10.0.12/24");
  });

  test("the sweep removes namespaces of dead runs and keeps live ones", async () => {
    // pid 2^22+1 is above pid_max's ceiling, so it can never be a live process.
    const dead = "emtb-4194305-zz00-x";
    await must(["ip", "netns", "add", dead]);
    mkdirSync(`/etc/netns/${dead}`, { recursive: true });
    mkdirSync("/etc/netns/emtb-4194305-zz00-orphan", { recursive: true });
    const removed = await sweepStale();
    expect(removed).toContain(dead);
    expect(existsSync(`/etc/netns/${dead}`)).toBe(false);
    expect(existsSync("/etc/netns/emtb-4194305-zz00-orphan")).toBe(false);
    const left = await listNamespaces();
    expect(left).not.toContain(dead);
    expect(left.filter((n) => n.startsWith(`emtb-${bed.runId}`)).length).toBe(5);
  });

  test("a node behind a NAT router reaches the outside LAN, seen as the router's address", async () => {
    const nat = await createTestbed({
      lans: [
        { name: "site", cidr: "192.168.1.0/24" },
        { name: "wan", cidr: "10.20.0.0/24" },
      ],
      routers: [{ name: "gw", inside: "site", insideIP: "192.168.1.1", outside: "wan", outsideIP: "10.20.0.1" }],
      nodes: [
        { name: "edge", lan: "site", ip: "192.168.1.10", podCidr: "10.244.5.0/24" },
        { name: "cloud", lan: "wan", ip: "10.20.0.10", podCidr: "10.244.6.0/24" },
      ],
    });
    try {
      const app = nat.node("cloud").spawn([process.execPath, APP, "--name", "cloud", "--ip", "10.20.0.10", "--http", "8080"]);
      await app.waitFor(/ready/);
      const r = await nat.node("edge").exec(["curl", "-s", "--max-time", "2", "http://10.20.0.10:8080/ip"]);
      expect(r.stdout).toBe("10.20.0.1");
      // The cloud side cannot reach the site directly: no route into the NATed LAN.
      const back = await nat.node("cloud").exec(["curl", "-s", "--max-time", "1", "http://192.168.1.10:8080/"]);
      expect(back.code).not.toBe(0);
    } finally {
      await nat.destroy();
    }
  }, 30_000);

  test("destroy removes every namespace and /etc/netns folder of the run", async () => {
    const mine = (await listNamespaces()).filter((n) => n.startsWith(`emtb-${bed.runId}`));
    await bed.destroy();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`emtb-${bed.runId}`));
    expect(left).toEqual([]);
    for (const ns of mine) expect(existsSync(`/etc/netns/${ns}`)).toBe(false);
    expect((await run(["ip", "netns", "exec", mine[0]!, "true"])).code).not.toBe(0);
  });
});
