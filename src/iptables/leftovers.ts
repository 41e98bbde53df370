// EdgeMesh's leftovers on a node we take over. EdgeMesh's agent (v1.12 and later: kube-proxy
// v1.23's userspace proxier, pkg/proxy/userspace) keeps nat chains KUBE-PORTALS-CONTAINER,
// KUBE-PORTALS-HOST, KUBE-NODEPORT-CONTAINER, KUBE-NODEPORT-HOST (every rule a DNAT to its listen
// IP, the bridge IP) with jumps from PREROUTING/OUTPUT carrying its fixed comments, and a filter
// chain KUBE-NODEPORT-NON-LOCAL jumped to from INPUT; its older fork (v1.10-1.11) named the filter
// chain EDGEMESH-NODEPORT-NON-LOCAL (its nat chains had our names: the syncer replaces those). An
// agent that was killed leaves all of it behind, DNATing cluster IPs to ports nobody listens on.
//
// Pure detection over iptables-save text, then one restore per table through the same atomic
// path as the sync. Only a chain set that is EdgeMesh's in every rule is removed: a real
// kube-proxy in userspace mode writes the same chain names but REDIRECTs or DNATs to the host's
// IP, and anything else referring to these chains means someone else owns them. Those are left
// alone and reported.

import { splitArgs } from "./jumps.ts";

/** nat chains of the userspace proxier. */
export const EDGEMESH_NAT_CHAINS: readonly string[] = ["KUBE-NODEPORT-CONTAINER", "KUBE-NODEPORT-HOST", "KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST"];
/** filter chains: the proxier's (v1.12+) and the fork's (v1.10-1.11). */
export const EDGEMESH_FILTER_CHAINS: readonly string[] = ["EDGEMESH-NODEPORT-NON-LOCAL", "KUBE-NODEPORT-NON-LOCAL"];

/** The comments of the proxier's jumps from built-in chains (iptablesInit). */
export const JUMP_COMMENT_PORTALS = "handle ClusterIPs; NOTE: this must be before the NodePort rules";
export const JUMP_COMMENT_NODEPORTS = "handle service NodePorts; NOTE: this must be the last rule in the chain";
export const JUMP_COMMENT_NON_LOCAL = "Ensure that non-local NodePort traffic can flow";

export interface TableLeftovers {
  /** Chains to flush and delete, sorted. */
  readonly chains: string[];
  /** iptables-save lines ("-A CHAIN ...") of the jumps into them, to delete. */
  readonly jumps: string[];
  /** Rules inside the chains (what the removal takes away). */
  readonly rules: number;
}

export interface Leftovers {
  readonly nat: TableLeftovers;
  readonly filter: TableLeftovers;
  /** Chains with EdgeMesh's names that are not (only) EdgeMesh's: left alone, with the reason. */
  readonly kept: string[];
}

interface Rule {
  readonly line: string;
  readonly chain: string;
  readonly args: string[];
}

type Table = { chains: Set<string>; rules: Rule[] };

/** iptables-save text -> per table: declared chains and rules in order. */
export function parseSave(text: string): Map<string, Table> {
  const tables = new Map<string, Table>();
  let cur: Table | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      cur = { chains: new Set(), rules: [] };
      tables.set(line.slice(1), cur);
    } else if (cur === null || line === "" || line.startsWith("#") || line === "COMMIT") {
      continue;
    } else if (line.startsWith(":")) {
      cur.chains.add(line.slice(1).split(/\s+/)[0]!);
    } else if (line.startsWith("-A ")) {
      const args = splitArgs(line);
      cur.rules.push({ line, chain: args[1]!, args: args.slice(2) });
    }
  }
  return tables;
}

const EMPTY: TableLeftovers = { chains: [], jumps: [], rules: 0 };

/** What of `save` (iptables-save, all tables) is EdgeMesh's and can go. Pure. */
export function findEdgeMeshLeftovers(save: string, bridgeIP: string): Leftovers {
  const tables = parseSave(save);
  const kept: string[] = [];
  const nat = tables.get("nat");
  const natResult = nat ? judge(nat, "nat", EDGEMESH_NAT_CHAINS, natRuleIsEdgeMesh(bridgeIP), natJumpIsEdgeMesh, kept) : null;
  const filter = tables.get("filter");
  // The filter chain of the proxier belongs to whoever owns the nat chains: not removed when
  // those are someone else's (a kube-proxy in userspace mode).
  const natForeign = natResult === null && nat !== undefined && EDGEMESH_NAT_CHAINS.some((c) => nat.chains.has(c));
  let filterResult: TableLeftovers | null = null;
  if (filter) {
    if (natForeign && filter.chains.has("KUBE-NODEPORT-NON-LOCAL")) {
      kept.push("filter KUBE-NODEPORT-NON-LOCAL: its nat chains are not EdgeMesh's");
      filterResult = judge(filter, "filter", ["EDGEMESH-NODEPORT-NON-LOCAL"], filterRuleIsEdgeMesh, filterJumpIsEdgeMesh, kept);
    } else {
      filterResult = judge(filter, "filter", EDGEMESH_FILTER_CHAINS, filterRuleIsEdgeMesh, filterJumpIsEdgeMesh, kept);
    }
  }
  return { nat: natResult ?? EMPTY, filter: filterResult ?? EMPTY, kept };
}

/** Restore text that deletes the jumps and then the chains, one transaction per table; "" when
 * there is nothing to remove. Always applied with --noflush. */
export function renderLeftoverCleanup(l: Leftovers): string {
  const out: string[] = [];
  for (const [table, t] of [["nat", l.nat], ["filter", l.filter]] as const) {
    if (t.chains.length === 0) continue;
    out.push(`*${table}`);
    // Declaring a chain flushes it (it exists: it was just read), so -X finds it empty.
    for (const c of t.chains) out.push(`:${c} - [0:0]`);
    for (const j of t.jumps) out.push(`-D${j.slice(2)}`);
    for (const c of t.chains) out.push(`-X ${c}`);
    out.push("COMMIT");
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}

/**
 * The chains of `names` present in `t`, if every rule in them passes `ruleOk` and every
 * reference to them is a jump `jumpOk` accepts; else null (and the reason in `kept`).
 */
function judge(
  t: Table,
  table: string,
  names: readonly string[],
  ruleOk: (r: Rule) => boolean,
  jumpOk: (r: Rule, target: string) => boolean,
  kept: string[],
): TableLeftovers | null {
  const present = names.filter((c) => t.chains.has(c)).sort();
  if (present.length === 0) return EMPTY;
  const set = new Set(present);
  const jumps: string[] = [];
  let rules = 0;
  for (const r of t.rules) {
    if (set.has(r.chain)) {
      rules++;
      if (!ruleOk(r)) {
        kept.push(`${table} ${present.join(", ")}: not EdgeMesh's (${r.line})`);
        return null;
      }
      continue;
    }
    const target = jumpTarget(r.args);
    if (target === undefined || !set.has(target)) continue;
    if (!jumpOk(r, target)) {
      kept.push(`${table} ${present.join(", ")}: referenced by a rule that is not EdgeMesh's (${r.line})`);
      return null;
    }
    jumps.push(r.line);
  }
  return { chains: present, jumps, rules };
}

function natRuleIsEdgeMesh(bridgeIP: string): (r: Rule) => boolean {
  const prefix = `${bridgeIP}:`;
  return (r) => jumpTarget(r.args) === "DNAT" && (value(r.args, "--to-destination") ?? "").startsWith(prefix);
}

function natJumpIsEdgeMesh(r: Rule, target: string): boolean {
  const comment = value(r.args, "--comment");
  if (target.startsWith("KUBE-PORTALS-")) return r.chain === (target === "KUBE-PORTALS-CONTAINER" ? "PREROUTING" : "OUTPUT") && comment === JUMP_COMMENT_PORTALS;
  return r.chain === (target === "KUBE-NODEPORT-CONTAINER" ? "PREROUTING" : "OUTPUT") && comment === JUMP_COMMENT_NODEPORTS;
}

/** The proxier's NON-LOCAL rules: accept NEW connections to one of its proxy ports. */
function filterRuleIsEdgeMesh(r: Rule): boolean {
  // `-m state --state NEW`; some iptables-nft versions print it as `-m conntrack --ctstate NEW`.
  return jumpTarget(r.args) === "ACCEPT" && value(r.args, "--dport") !== undefined && (value(r.args, "--state") ?? value(r.args, "--ctstate")) === "NEW";
}

function filterJumpIsEdgeMesh(r: Rule): boolean {
  return r.chain === "INPUT" && value(r.args, "--comment") === JUMP_COMMENT_NON_LOCAL;
}

function jumpTarget(args: string[]): string | undefined {
  for (let i = 0; i < args.length - 1; i++) if (args[i] === "-j" || args[i] === "-g") return args[i + 1];
  return undefined;
}

function value(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
