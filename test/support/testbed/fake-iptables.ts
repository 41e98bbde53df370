// An in-memory nat table behind the IptablesExec interface, for unit tests of the syncer: it
// applies restore text the way iptables-restore --noflush does (atomically; a declared chain is
// flushed) and answers -S/-C/-I/-D/-A/-F/-X like iptables. The real thing is exercised in the
// integration tests inside a network namespace.

import { IptablesError, type ExecResult, type IptablesExec } from "../../../src/iptables/index.ts";
import { parseNat, type Chains } from "./iptables-trace.ts";

export interface FakeIptables extends IptablesExec {
  chains: Chains;
  restores: string[];
  /** Arguments of every conntrack call (when created with conntrack: true). */
  conntrackCalls: string[][];
  /** Make the next n restores fail with this message. */
  failRestores(n: number, message?: string): void;
  /** The table as iptables-save would print it (nat only). */
  save(): string;
}

const BUILTINS = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"];

export function createFakeIptables(initial?: string, options: { conntrack?: boolean } = {}): FakeIptables {
  let chains: Chains = new Map(BUILTINS.map((c) => [c, [] as string[][]]));
  if (initial) chains = parseNat(initial, chains);
  let failures = 0;
  let failMessage = "";
  const restores: string[] = [];
  const conntrackCalls: string[][] = [];

  const ok = (stdout = ""): ExecResult => ({ code: 0, stdout, stderr: "" });
  const err = (stderr: string, code = 1): ExecResult => ({ code, stdout: "", stderr });
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const quote = (a: string) => (/[\s"]/.test(a) ? `"${a.replace(/"/g, '\\"')}"` : a);

  const fake: FakeIptables = {
    backend: "nft",
    get chains() {
      return chains;
    },
    set chains(c) {
      chains = c;
    },
    restores,
    conntrackCalls,
    ...(options.conntrack
      ? {
          async conntrack(args: readonly string[]) {
            conntrackCalls.push([...args]);
            return { code: 1, stdout: "", stderr: "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n" };
          },
        }
      : {}),
    failRestores(n, message = "iptables-restore: line 3 failed") {
      failures = n;
      failMessage = message;
    },
    save() {
      const out = ["*nat"];
      for (const name of chains.keys()) out.push(`:${name} ${BUILTINS.includes(name) ? "ACCEPT" : "-"} [0:0]`);
      for (const [name, rules] of chains) for (const r of rules) out.push(`-A ${name} ${r.map(quote).join(" ")}`);
      out.push("COMMIT", "");
      return out.join("\n");
    },
    async restore(text) {
      restores.push(text);
      if (failures > 0) {
        failures--;
        throw new IptablesError("iptables-restore --noflush", 1, failMessage);
      }
      const next: Chains = new Map([...chains].map(([k, v]) => [k, v.map((r) => [...r])]));
      for (const line of text.split("\n")) {
        if (line.startsWith(":")) next.set(line.slice(1).split(" ")[0]!, []);
      }
      // parseNat re-declares chains; feed it only the rule and delete lines on top of `next`.
      parseNat(["*nat", ...text.split("\n").filter((l) => l.startsWith("-A ") || l.startsWith("-X "))].join("\n"), next);
      for (const [name, rules] of next) {
        for (const r of rules) {
          const j = r.indexOf("-j");
          const target = j >= 0 ? r[j + 1]! : "";
          if (/^[A-Z][A-Z-]+$/.test(target) && target.includes("-") && !next.has(target)) {
            throw new IptablesError("iptables-restore --noflush", 2, `chain ${name} jumps to missing ${target}`);
          }
        }
      }
      chains = next;
    },
    async run(args) {
      const a = [...args];
      if (a[0] === "-t") a.splice(0, 2);
      const [op, chain, ...rest] = a;
      if (!chain) return err("no chain");
      const rules = chains.get(chain);
      switch (op) {
        case "-S":
          if (!rules) return err(`iptables: No chain/target/match by that name.`);
          return ok([BUILTINS.includes(chain) ? `-P ${chain} ACCEPT` : `-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r.map(quote).join(" ")}`)].join("\n") + "\n");
        case "-C":
          if (!rules) return err(`iptables: No chain/target/match by that name.`, 1);
          return rules.some((r) => same(r, rest)) ? ok() : err("iptables: Bad rule (does a matching rule exist in that chain?).");
        case "-I": {
          if (!rules) return err("no chain");
          const pos = Number(rest[0]);
          rules.splice(pos - 1, 0, rest.slice(1));
          return ok();
        }
        case "-A":
          if (!rules) return err("no chain");
          rules.push(rest);
          return ok();
        case "-D": {
          const i = rules?.findIndex((r) => same(r, rest)) ?? -1;
          if (i < 0) return err("iptables: Bad rule (does a matching rule exist in that chain?).");
          rules!.splice(i, 1);
          return ok();
        }
        case "-F":
          if (!rules) return err("no chain");
          rules.length = 0;
          return ok();
        case "-X":
          chains.delete(chain);
          return ok();
        default:
          return err(`fake iptables: unsupported ${op}`);
      }
    },
  };
  return fake;
}
