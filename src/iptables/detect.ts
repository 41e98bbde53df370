// Which iptables does this host use? The same rule as Kubernetes' iptables-wrapper: whichever
// backend already holds rules wins (kube-proxy, the CNI and the distro put theirs in one of them,
// and ours must sit in the same one to run before kube-proxy's); with no rules anywhere, follow
// what `iptables --version` says. Legacy is only read when the kernel already has legacy tables
// (/proc/net/ip_tables_names), so detection itself never creates them.

import { spawnCommand, type ExecResult, type IptablesBackend } from "./exec.ts";

export interface DetectOptions {
  /** Prepended to every command, e.g. ["ip", "netns", "exec", "ns1"]. */
  readonly prefix?: readonly string[];
  /** Injected for tests. */
  readonly spawn?: (argv: readonly string[]) => Promise<ExecResult>;
}

export async function detectIptablesBackend(options: DetectOptions = {}): Promise<IptablesBackend> {
  const prefix = options.prefix ?? [];
  const spawn = options.spawn ?? ((argv: readonly string[]) => spawnCommand(argv));
  const run = (argv: string[]) => spawn([...prefix, ...argv]);

  const names = await run(["cat", "/proc/net/ip_tables_names"]);
  const hasLegacyTables = names.code === 0 && names.stdout.trim() !== "";
  const [nftSave, legacySave] = await Promise.all([
    run([Bun.which("iptables-nft-save") ? "iptables-nft-save" : "iptables-save"]),
    hasLegacyTables ? run(["iptables-legacy-save"]) : Promise.resolve(undefined),
  ]);
  const nftRules = nftSave && nftSave.code === 0 ? countRules(nftSave.stdout) : 0;
  const legacyRules = legacySave && legacySave.code === 0 ? countRules(legacySave.stdout) : 0;
  if (legacyRules > nftRules) return "legacy";
  if (nftRules > legacyRules) return "nft";
  const version = await run(["iptables", "--version"]);
  return /legacy/.test(version.stdout) ? "legacy" : "nft";
}

export function countRules(saveOutput: string): number {
  let n = 0;
  for (const line of saveOutput.split("\n")) if (line.startsWith("-A ")) n++;
  return n;
}
