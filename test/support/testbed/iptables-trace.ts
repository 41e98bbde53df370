// A tiny nat-table interpreter for tests: parse iptables-restore / iptables-save text into chains
// and trace one packet through them (the way kube-proxy's tests do), so tests assert where
// traffic goes instead of comparing rule text. It knows exactly the matches and targets our
// renderer uses and throws on anything else, so a new kind of rule cannot slip by untested.

import { splitArgs } from "../../../src/iptables/jumps.ts";

export type Chains = Map<string, string[][]>;

export interface Packet {
  readonly hook: "PREROUTING" | "OUTPUT";
  readonly dst: string;
  readonly dport: number;
  readonly proto: "tcp" | "udp";
  readonly src?: string;
}

export interface Verdict {
  /** "ip:port" when a DNAT rule caught the packet, else null (it went on unchanged). */
  readonly dnat: string | null;
  /** Chains entered, in order. */
  readonly path: string[];
  /** Comment of the rule that decided, if any. */
  readonly comment: string | null;
}

/** Parse the *nat section of restore/save text. Chains declared with `:NAME` start empty. */
export function parseNat(text: string, into: Chains = new Map()): Chains {
  let inNat = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) inNat = line === "*nat";
    if (!inNat || line === "" || line.startsWith("#")) continue;
    if (line.startsWith(":")) into.set(line.slice(1).split(" ")[0]!, []);
    else if (line.startsWith("-A ")) {
      const args = splitArgs(line);
      const chain = args[1]!;
      if (!into.has(chain)) throw new Error(`rule for undeclared chain ${chain}`);
      into.get(chain)!.push(args.slice(2));
    } else if (line.startsWith("-X ")) into.delete(line.slice(3).trim());
  }
  return into;
}

export function trace(chains: Chains, packet: Packet, isLocal: (ip: string) => boolean): Verdict {
  const path: string[] = [];
  const result = walk(chains, packet.hook, packet, isLocal, path, 0);
  return { dnat: result?.dnat ?? null, path, comment: result?.comment ?? null };
}

interface Hit {
  dnat: string | null;
  comment: string | null;
  returned?: boolean;
}

function walk(chains: Chains, name: string, p: Packet, isLocal: (ip: string) => boolean, path: string[], depth: number): Hit | null {
  if (depth > 16) throw new Error("jump loop");
  const rules = chains.get(name);
  if (!rules) {
    if (name === "PREROUTING" || name === "OUTPUT") return null;
    throw new Error(`jump to missing chain ${name}`);
  }
  path.push(name);
  for (const rule of rules) {
    const m = matchRule(rule, p, isLocal);
    if (!m.matches) continue;
    if (m.target === null) continue;
    if (m.target === "DNAT") return { dnat: m.toDestination, comment: m.comment };
    if (m.target === "RETURN") return null;
    if (m.target === "ACCEPT") return { dnat: null, comment: m.comment };
    const inner = walk(chains, m.target, p, isLocal, path, depth + 1);
    if (inner) return inner;
  }
  return null;
}

interface Match {
  matches: boolean;
  target: string | null;
  toDestination: string | null;
  comment: string | null;
}

function matchRule(rule: string[], p: Packet, isLocal: (ip: string) => boolean): Match {
  let ok = true;
  let negate = false;
  let target: string | null = null;
  let toDestination: string | null = null;
  let comment: string | null = null;
  const check = (cond: boolean) => {
    if (cond === negate) ok = false;
    negate = false;
  };
  for (let i = 0; i < rule.length; i++) {
    const a = rule[i]!;
    switch (a) {
      case "!":
        negate = true;
        break;
      case "-d":
        check(inCidr(p.dst, rule[++i]!));
        break;
      case "-s":
        check(p.src !== undefined && inCidr(p.src, rule[++i]!));
        break;
      case "-p":
        check(rule[++i] === p.proto);
        break;
      case "-m": {
        const mod = rule[++i];
        if (mod !== "tcp" && mod !== "udp" && mod !== "comment" && mod !== "addrtype") throw new Error(`unknown match module ${mod}`);
        break;
      }
      case "--dport":
        check(Number(rule[++i]) === p.dport);
        break;
      case "--dst-type":
        if (rule[++i] !== "LOCAL") throw new Error("only --dst-type LOCAL is modelled");
        check(isLocal(p.dst));
        break;
      case "--comment":
        comment = rule[++i]!;
        break;
      case "-j":
        target = rule[++i]!;
        break;
      case "--to-destination":
        toDestination = rule[++i]!;
        break;
      default:
        throw new Error(`unknown rule argument ${a} in: ${rule.join(" ")}`);
    }
  }
  return { matches: ok, target, toDestination, comment };
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((toInt(ip) & mask) >>> 0) === ((toInt(base!) & mask) >>> 0);
}

function toInt(ip: string): number {
  return ip.split(".").reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
}
