import { describe, expect, test } from "bun:test";
import { detectIptablesBackend, type ExecResult } from "../../src/iptables/index.ts";

/** A host described by what each command prints. */
function host(o: { legacyTables: string; nftSave: string; legacySave: string; version: string }) {
  const calls: string[] = [];
  const spawn = async (argv: readonly string[]): Promise<ExecResult> => {
    const cmd = argv.join(" ");
    calls.push(cmd);
    const out = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: "" });
    if (cmd === "cat /proc/net/ip_tables_names") return out(o.legacyTables);
    if (cmd.endsWith("iptables-legacy-save")) return out(o.legacySave);
    if (cmd.endsWith("-save")) return out(o.nftSave);
    if (cmd === "iptables --version") return out(o.version);
    return { code: 127, stdout: "", stderr: "unexpected " + cmd };
  };
  return { spawn, calls };
}

const rules = (n: number) => "*nat\n" + Array.from({ length: n }, (_, i) => `-A PREROUTING -j X${i}`).join("\n") + "\nCOMMIT\n";

describe("detectIptablesBackend", () => {
  test("the backend that already holds more rules wins (kube-proxy's rules live there)", async () => {
    expect(await detectIptablesBackend(host({ legacyTables: "nat\nfilter\n", nftSave: rules(1), legacySave: rules(40), version: "iptables v1.8.9 (nf_tables)" }))).toBe("legacy");
    expect(await detectIptablesBackend(host({ legacyTables: "nat\n", nftSave: rules(30), legacySave: rules(2), version: "iptables v1.8.9 (legacy)" }))).toBe("nft");
  });

  test("with no rules anywhere, `iptables --version` decides", async () => {
    expect(await detectIptablesBackend(host({ legacyTables: "", nftSave: "", legacySave: "", version: "iptables v1.8.9 (legacy)" }))).toBe("legacy");
    expect(await detectIptablesBackend(host({ legacyTables: "", nftSave: "", legacySave: "", version: "iptables v1.8.9 (nf_tables)" }))).toBe("nft");
  });

  test("legacy tables are not read (and so not created) when the kernel has none", async () => {
    const h = host({ legacyTables: "", nftSave: rules(3), legacySave: rules(99), version: "iptables v1.8.9 (nf_tables)" });
    expect(await detectIptablesBackend(h)).toBe("nft");
    expect(h.calls.some((c) => c.includes("legacy-save"))).toBe(false);
  });

  test("every command gets the prefix (to run inside a network namespace)", async () => {
    const h = host({ legacyTables: "", nftSave: "", legacySave: "", version: "iptables v1.8.9 (nf_tables)" });
    const prefixed = { spawn: (argv: readonly string[]) => h.spawn(argv.slice(4)), prefix: ["ip", "netns", "exec", "x"] };
    const seen: string[] = [];
    await detectIptablesBackend({ prefix: prefixed.prefix, spawn: (argv) => (seen.push(argv.slice(0, 4).join(" ")), prefixed.spawn(argv)) });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((s) => s === "ip netns exec x")).toBe(true);
  });
});
