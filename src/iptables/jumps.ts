// The only rules we own in built-in chains: one jump each from PREROUTING and OUTPUT, first in
// the chain so we see service traffic before kube-proxy's KUBE-SERVICES (EdgeMesh's hybrid
// proxy). "Exactly once, first" is checked by listing the built-in chain, which also finds stale
// or duplicated jumps left by a killed agent (or by EdgeMesh's own agent) and removes them.

import { CANARY_COMMENT, JUMPS, OWN_CHAINS, type Jump } from "./constants.ts";
import { IptablesError } from "./errors.ts";
import type { IptablesExec } from "./exec.ts";

/** Make each jump exist exactly once, as rule 1 of its built-in chain. Returns what it changed. */
export async function ensureJumps(exec: IptablesExec): Promise<string[]> {
  const changes: string[] = [];
  for (const jump of JUMPS) {
    const rules = await listChain(exec, jump.from);
    const ours = rules.filter(isOurJump);
    const first = rules[0];
    if (ours.length === 1 && isExactJump(first, jump)) continue;
    for (const rule of ours) await deleteRule(exec, rule);
    await must(exec, ["-t", "nat", "-I", jump.from, "1", ...jumpSpec(jump)]);
    changes.push(`${jump.from} -> ${jump.to} (had ${ours.length}, first: ${isExactJump(first, jump)})`);
  }
  return changes;
}

/** Remove every jump from PREROUTING/OUTPUT into our chains (ours, stale or foreign copies). */
export async function removeJumps(exec: IptablesExec): Promise<number> {
  let removed = 0;
  for (const builtin of ["PREROUTING", "OUTPUT"]) {
    const rules = await listChain(exec, builtin);
    for (const rule of rules.filter(isOurJump)) {
      await deleteRule(exec, rule);
      removed++;
    }
  }
  return removed;
}

/** What is wrong with the installed rules, if anything: missing/duplicate/displaced jumps and
 * chains whose canary rule is gone (flushed or deleted by someone else). Empty when healthy. */
export async function findProblems(exec: IptablesExec): Promise<string[]> {
  const problems: string[] = [];
  for (const jump of JUMPS) {
    const rules = await listChain(exec, jump.from);
    const ours = rules.filter(isOurJump).length;
    if (ours !== 1 || !isExactJump(rules[0], jump)) {
      problems.push(`${jump.from}: ${ours} jump(s) to our chains, ours first: ${isExactJump(rules[0], jump)}`);
    }
  }
  for (const chain of OWN_CHAINS) {
    const res = await exec.run(["-t", "nat", "-C", chain, "-m", "comment", "--comment", CANARY_COMMENT]);
    if (res.code !== 0) problems.push(`${chain}: canary missing (chain flushed or deleted)`);
  }
  return problems;
}

export function jumpSpec(jump: Jump): string[] {
  return ["-m", "comment", "--comment", jump.comment, "-j", jump.to];
}

/** One rule of a listed chain: its arguments without the leading "-A CHAIN". */
interface ListedRule {
  readonly chain: string;
  readonly args: string[];
}

/** `iptables -t nat -S CHAIN`, parsed. */
async function listChain(exec: IptablesExec, chain: string): Promise<ListedRule[]> {
  const res = await must(exec, ["-t", "nat", "-S", chain]);
  const rules: ListedRule[] = [];
  for (const line of res.stdout.split("\n")) {
    if (line.startsWith("-A ")) rules.push({ chain, args: splitArgs(line).slice(2) });
  }
  return rules;
}

async function deleteRule(exec: IptablesExec, rule: ListedRule): Promise<void> {
  // Delete by spec, not by number: a rule inserted meanwhile by someone else cannot be hit.
  await must(exec, ["-t", "nat", "-D", rule.chain, ...rule.args]);
}

function isOurJump(rule: ListedRule): boolean {
  const j = rule.args.indexOf("-j");
  return j >= 0 && OWN_CHAINS.includes(rule.args[j + 1] ?? "");
}

function isExactJump(rule: ListedRule | undefined, jump: Jump): boolean {
  return rule !== undefined && rule.args.join("\u0000") === jumpSpec(jump).join("\u0000");
}

async function must(exec: IptablesExec, args: string[]) {
  const res = await exec.run(args);
  if (res.code !== 0) throw new IptablesError(`iptables ${args.join(" ")}`, res.code, res.stderr);
  return res;
}

/** Split one line of `iptables -S` output into arguments (double quotes, backslash escapes). */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inToken = true;
    } else if (c === " " || c === "\t") {
      if (inToken) out.push(cur);
      cur = "";
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (inToken) out.push(cur);
  return out;
}
