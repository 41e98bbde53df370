// The Edge CNI's TUN device and routes (src/host/tun.ts, routes.ts) for real, inside a scratch
// network namespace: a helper process opens edge_tun0 through bun:ffi, routes CIDRs into it and
// answers ICMP echo requests by writing replies back into the device, so `ping` in the
// namespace exercises the kernel -> read -> write -> kernel path. Also: the MTU edge, route
// convergence, a conflicting route left alone, SIGTERM and kill -9 cleanup, a second opener.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createScratchNamespace, type Place } from "../support/netns.ts";

const HELPER = join(import.meta.dir, "../support/cni/tun-echo.ts");

interface Helper {
  out(): string;
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  send(line: string): void;
  /** Send `routes ARG` and wait until the helper has applied exactly that command. */
  routes(arg: string): Promise<void>;
  kill(signal: NodeJS.Signals): Promise<number>;
  proc: ReturnType<typeof Bun.spawn>;
}

function startHelper(ns: string, args: string[] = []): Helper {
  const proc = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, HELPER, ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let text = "";
  let syncs = 0;
  const read = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) text += d.decode(c, { stream: true });
  };
  void read(proc.stdout);
  void read(proc.stderr);
  return {
    proc,
    out: () => text,
    async waitFor(re, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (!re.test(text)) {
        if (Date.now() > end || proc.exitCode !== null) throw new Error(`no ${re} from tun-echo (exit ${proc.exitCode}):\n${text.slice(-3000)}`);
        await Bun.sleep(20);
      }
    },
    send(line) {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    },
    async routes(arg) {
      this.send(`routes ${arg}`);
      await this.waitFor(new RegExp(`^synced ${++syncs}$`, "m"));
    },
    async kill(signal) {
      if (proc.exitCode === null) proc.kill(signal);
      return proc.exited;
    },
  };
}

/** Count of lines matching `re` in `cmd`'s output in the namespace. */
async function lines(ns: Place, argv: string[], re: RegExp): Promise<string[]> {
  const r = await ns.exec(argv);
  return r.stdout.split("\n").filter((l) => re.test(l));
}

const ourRoutes = (ns: Place) => lines(ns, ["ip", "-4", "route", "show", "proto", "152"], /\S/);
const deviceExists = async (ns: Place) => (await ns.exec(["ip", "link", "show", "edge_tun0"])).code === 0;

describe("integration: the Edge CNI TUN device and its routes", () => {
  let ns: Place & { destroy(): Promise<void> };
  let h: Helper;

  beforeAll(async () => {
    ns = await createScratchNamespace("cnitun");
    // A second device so a CIDR can be routed by "someone else" (the primary CNI's route).
    await ns.must(["ip", "link", "add", "other0", "type", "bridge"]);
    await ns.must(["ip", "addr", "add", "10.97.0.1/24", "dev", "other0"]);
    await ns.must(["ip", "link", "set", "other0", "up"]);
    h = startHelper(ns.ns, ["--offload", "1"]);
    await h.waitFor(/^ready$/m);
  }, 30_000);

  afterAll(async () => {
    await h?.kill("SIGKILL");
    await ns?.destroy();
  });

  test("the device is up with EdgeMesh's name and a 1500-byte MTU", async () => {
    const r = await ns.must(["ip", "-d", "link", "show", "edge_tun0"]);
    expect(r.stdout).toContain("mtu 1500");
    expect(r.stdout).toMatch(/state UNKNOWN|UP/);
    expect(r.stdout).toContain("tun type tun");
  });

  test("routes converge to the desired set, on our device with our protocol", async () => {
    await h.routes("10.98.0.0/24,10.99.1.0/24");
    expect((await ourRoutes(ns)).map((l) => l.split(" ")[0])).toEqual(["10.98.0.0/24", "10.99.1.0/24"]);
    await h.routes("10.98.0.0/24");
    expect((await ourRoutes(ns)).map((l) => l.split(" ")[0])).toEqual(["10.98.0.0/24"]);
  });

  test("a pod CIDR that another device routes is left alone", async () => {
    await h.routes("10.98.0.0/24,10.97.0.0/24");
    await h.waitFor(/left alone/);
    expect((await ourRoutes(ns)).map((l) => l.split(" ")[0])).toEqual(["10.98.0.0/24"]);
    expect((await ns.must(["ip", "-4", "route", "show", "10.97.0.0/24"])).stdout).toContain("dev other0");
  });

  test("ping through the device: the kernel hands the request to us, our reply comes back", async () => {
    const r = await ns.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.98.0.5"]);
    expect(r.stdout).toContain("3 received");
  });

  test("the MTU edge: a 1500-byte DF probe passes, 1501 bytes is refused locally", async () => {
    const ok = await ns.exec(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", "10.98.0.5"]);
    expect(ok.stdout).toContain("1 received");
    const big = await ns.exec(["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", "10.98.0.5"]);
    expect(big.code).not.toBe(0);
    expect(big.stdout + big.stderr).toMatch(/mtu = 1500|message too long/i);
  });

  test("a second opener is refused with a message that says why", async () => {
    const second = startHelper(ns.ns);
    expect(await second.proc.exited).toBe(3);
    expect(second.out()).toContain("held by another process");
  });

  test("SIGTERM closes the device: it and its routes are gone", async () => {
    expect(await h.kill("SIGTERM")).toBe(0);
    expect(h.out()).toContain("closed");
    expect(await deviceExists(ns)).toBe(false);
    expect(await ourRoutes(ns)).toEqual([]);
  });

  test("kill -9 leaves nothing either, and a restart converges without duplicate routes", async () => {
    h = startHelper(ns.ns, ["--offload", "1"]);
    await h.waitFor(/^ready$/m);
    await h.routes("10.98.0.0/24,10.99.2.0/24");
    expect(await ourRoutes(ns)).toHaveLength(2);
    await h.kill("SIGKILL");
    expect(await deviceExists(ns)).toBe(false);
    expect(await ourRoutes(ns)).toEqual([]);
    h = startHelper(ns.ns, ["--offload", "0"]);
    await h.waitFor(/^ready$/m);
    await h.routes("10.98.0.0/24,10.99.2.0/24");
    await h.routes("10.98.0.0/24,10.99.2.0/24");
    expect((await ourRoutes(ns)).map((l) => l.split(" ")[0])).toEqual(["10.98.0.0/24", "10.99.2.0/24"]);
    // Without offload the device carries plain packets, and ping still works.
    expect((await ns.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.98.0.9"])).stdout).toContain("2 received");
  });

  test("a route deleted by hand comes back at the next resync", async () => {
    await ns.must(["ip", "route", "del", "10.99.2.0/24", "dev", "edge_tun0"]);
    const end = Date.now() + 5000;
    while (Date.now() < end && (await ourRoutes(ns)).length < 2) await Bun.sleep(100);
    expect((await ourRoutes(ns)).map((l) => l.split(" ")[0])).toEqual(["10.98.0.0/24", "10.99.2.0/24"]);
  });
});
