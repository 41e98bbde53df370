// Taking over a node from EdgeMesh, host side, with the real tools in throwaway network
// namespaces: EdgeMesh's leftover iptables rules (exactly as its userspace proxier writes them)
// next to kube-proxy's iptables mode are cleaned up in both backends, what is not EdgeMesh's
// stays, and the bridge device is adopted or created and released accordingly.

import { afterEach, describe, expect, test } from "bun:test";
import { ensureBridge, releaseBridge } from "../../src/host/index.ts";
import { createIptablesExec, removeEdgeMeshLeftovers, removeEdgeMeshLeftoversAnywhere } from "../../src/iptables/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createScratchNamespace, type Place } from "../support/netns.ts";
import { edgemeshLeftoverCommands, kubeProxyCommands, LEFTOVER_SERVICES } from "../support/testbed/edgemesh-leftovers.ts";

const BRIDGE = "169.254.96.16";
const EDGEMESH = /KUBE-PORTALS-|KUBE-NODEPORT-(CONTAINER|HOST|NON-LOCAL)/;
const KUBE = kubeProxyCommands("10.244.0.0/16", [
  { name: "default/legacy:http", clusterIP: "10.96.0.30", port: 80, endpoint: "10.10.0.11:8081", svcChain: "KUBE-SVC-LEGACYHTTP4XQ2Z7K", sepChain: "KUBE-SEP-LEGACYEP5M3TQ9WB" },
]);

let spaces: (Place & { destroy(): Promise<void> })[] = [];
afterEach(async () => {
  for (const ns of spaces) await ns.destroy();
  spaces = [];
});
async function scratch(label: string) {
  const ns = await createScratchNamespace(label);
  spaces.push(ns);
  return { ns, prefix: ["ip", "netns", "exec", ns.ns] };
}
const ruleLines = (save: string) =>
  save
    .split("\n")
    .filter((l) => l.startsWith("-A ") || l.startsWith(":") || l.startsWith("*"))
    .map((l) => l.replace(/\[\d+:\d+\]$/, ""));

for (const backend of ["nft", "legacy"] as const) {
  describe(`EdgeMesh's leftovers removed with iptables-${backend}`, () => {
    test("its chains and jumps go in one restore, kube-proxy's rules all stay, the log says it once", async () => {
      const { ns, prefix } = await scratch(`mig${backend}`);
      const bin = `iptables-${backend}`;
      for (const args of [...KUBE, ...edgemeshLeftoverCommands(BRIDGE, LEFTOVER_SERVICES)]) await ns.must([bin, ...args]);
      const save = async () => (await ns.must([`${bin}-save`])).stdout;
      const before = ruleLines(await save());
      expect(before.filter((l) => EDGEMESH.test(l)).length).toBe(5 + 5 + 12); // chains, jumps, rules

      const exec = createIptablesExec(backend, { prefix });
      const log = createMemoryLogger();
      const result = await removeEdgeMeshLeftovers(exec, BRIDGE, log);
      expect(result.error).toBe("");
      expect(result.removed?.nat.chains.length).toBe(4);
      const after = ruleLines(await save());
      expect(after.filter((l) => EDGEMESH.test(l))).toEqual([]);
      expect(after).toEqual(before.filter((l) => !EDGEMESH.test(l)));
      expect(log.lines.filter((l) => l.includes("removed the iptables rules")).length).toBe(1);
      expect(log.lines.find((l) => l.includes("removed the iptables rules"))).toContain("rules=12");

      // Nothing left: a second start finds nothing and says nothing.
      const again = await removeEdgeMeshLeftovers(exec, BRIDGE, log);
      expect(again.removed).toBeNull();
      expect(log.lines.filter((l) => l.includes("removed the iptables rules")).length).toBe(1);
    });

    test("kube-proxy's own userspace portals (REDIRECT) are left alone, with a warning", async () => {
      const { ns, prefix } = await scratch(`us${backend}`);
      const bin = `iptables-${backend}`;
      const userspace = edgemeshLeftoverCommands(BRIDGE, LEFTOVER_SERVICES).map((args) =>
        args.includes("DNAT") ? [...args.slice(0, args.indexOf("-j")), "-j", "REDIRECT", "--to-ports", args.at(-1)!.split(":")[1]!] : args,
      );
      for (const args of userspace) await ns.must([bin, ...args]);
      const before = (await ns.must([`${bin}-save`])).stdout;
      const log = createMemoryLogger();
      const result = await removeEdgeMeshLeftovers(createIptablesExec(backend, { prefix }), BRIDGE, log);
      expect(result.removed).toBeNull();
      expect(result.kept.length).toBeGreaterThan(0);
      expect(ruleLines((await ns.must([`${bin}-save`])).stdout)).toEqual(ruleLines(before));
      expect(log.lines.some((l) => l.includes("WARN") && l.includes("left alone"))).toBe(true);
    });
  });
}

describe("leftovers in the other iptables backend", () => {
  test("EdgeMesh's rules in legacy tables are found when the node's rules are in nft", async () => {
    const { ns, prefix } = await scratch("mixed");
    for (const args of KUBE) await ns.must(["iptables-nft", ...args]);
    for (const args of edgemeshLeftoverCommands(BRIDGE, LEFTOVER_SERVICES)) await ns.must(["iptables-legacy", ...args]);
    const log = createMemoryLogger();
    const results = await removeEdgeMeshLeftoversAnywhere("nft", BRIDGE, log, { prefix });
    expect(results.length).toBe(2);
    expect(results[0]!.removed).toBeNull();
    expect(results[1]!.removed?.nat.chains.length).toBe(4);
    expect((await ns.must(["iptables-legacy-save"])).stdout).not.toMatch(EDGEMESH);
    expect((await ns.must(["iptables-nft-save"])).stdout).toContain("KUBE-SERVICES");
  });
});

describe("the bridge device", () => {
  const link = async (ns: Place) => (await ns.exec(["ip", "-o", "addr", "show", "dev", "edgemesh0"])).stdout;

  test("created when missing, and deleted again at release", async () => {
    const { ns, prefix } = await scratch("brnew");
    const state = await ensureBridge("edgemesh0", BRIDGE, { prefix });
    expect(state).toEqual({ created: true, addedAddress: false, kind: "bridge" });
    expect(await link(ns)).toContain(`${BRIDGE}/32`);
    await releaseBridge("edgemesh0", BRIDGE, state, { prefix });
    expect((await ns.exec(["ip", "link", "show", "dev", "edgemesh0"])).code).not.toBe(0);
  });

  test("an existing device with the IP (EdgeMesh's leftover) is adopted and left in place", async () => {
    const { ns, prefix } = await scratch("bradopt");
    await ns.must(["ip", "link", "add", "edgemesh0", "type", "bridge"]);
    await ns.must(["ip", "addr", "add", `${BRIDGE}/32`, "dev", "edgemesh0"]);
    const state = await ensureBridge("edgemesh0", BRIDGE, { prefix });
    expect(state).toEqual({ created: false, addedAddress: false, kind: "bridge" });
    expect((await link(ns)).split("\n").filter((l) => l.includes(`${BRIDGE}/32`)).length).toBe(1);
    expect((await ns.must(["ip", "-o", "link", "show", "dev", "edgemesh0"])).stdout).toContain(",UP");
    await releaseBridge("edgemesh0", BRIDGE, state, { prefix });
    expect(await link(ns)).toContain(`${BRIDGE}/32`);
  });

  test("an existing device without the IP gets it, and loses only that at release", async () => {
    const { ns, prefix } = await scratch("braddr");
    await ns.must(["ip", "link", "add", "edgemesh0", "type", "bridge"]);
    await ns.must(["ip", "addr", "add", "169.254.96.99/32", "dev", "edgemesh0"]);
    const state = await ensureBridge("edgemesh0", BRIDGE, { prefix });
    expect(state).toEqual({ created: false, addedAddress: true, kind: "bridge" });
    expect(await link(ns)).toContain(`${BRIDGE}/32`);
    await releaseBridge("edgemesh0", BRIDGE, state, { prefix });
    const after = await link(ns);
    expect(after).not.toContain(`${BRIDGE}/32`);
    expect(after).toContain("169.254.96.99/32");
  });
});
