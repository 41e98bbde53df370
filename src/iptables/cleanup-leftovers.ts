// Taking over a node from EdgeMesh: remove what its agent left in iptables (leftovers.ts decides
// what), once, at start, before our own rules go in. One restore, atomic per table; a failure is
// logged and the start goes on (our jumps come first anyway: only traffic we do not proxy could
// still fall into the dead portals).

import type { Logger } from "../log/index.ts";
import { countRules } from "./detect.ts";
import { backendBinaries, createIptablesExec, spawnCommand, type ExecOptions, type IptablesBackend, type IptablesExec } from "./exec.ts";
import { findEdgeMeshLeftovers, renderLeftoverCleanup, type Leftovers } from "./leftovers.ts";

export interface LeftoverCleanup {
  /** What was removed (empty chain lists when there was nothing). */
  readonly removed: Leftovers | null;
  /** Chains with EdgeMesh's names left alone, with the reason. */
  readonly kept: readonly string[];
  /** Why the cleanup could not run or failed; "" when it did not. */
  readonly error: string;
}

export async function removeEdgeMeshLeftovers(exec: IptablesExec, bridgeIP: string, log: Logger): Promise<LeftoverCleanup> {
  if (!exec.dump) return { removed: null, kept: [], error: "no iptables-save" };
  let found: Leftovers;
  try {
    found = findEdgeMeshLeftovers(await exec.dump(), bridgeIP);
  } catch (err) {
    const error = (err as Error).message;
    log.warn("cannot read iptables to look for EdgeMesh's leftovers", { backend: exec.backend, error });
    return { removed: null, kept: [], error };
  }
  if (found.kept.length > 0) {
    log.warn("chains named like EdgeMesh's are not only EdgeMesh's: left alone", { backend: exec.backend, reasons: found.kept });
  }
  const text = renderLeftoverCleanup(found);
  if (text === "") return { removed: null, kept: found.kept, error: "" };
  try {
    await exec.restore(text);
  } catch (err) {
    const error = (err as Error).message;
    log.error("removing EdgeMesh's leftover iptables rules failed; they stay", { backend: exec.backend, error });
    return { removed: null, kept: found.kept, error };
  }
  log.info("removed the iptables rules a stopped EdgeMesh agent left behind", {
    backend: exec.backend,
    bridgeIP,
    nat: found.nat.chains.join(",") || "-",
    filter: found.filter.chains.join(",") || "-",
    rules: found.nat.rules + found.filter.rules,
    jumps: found.nat.jumps.length + found.filter.jumps.length,
  });
  return { removed: found, kept: found.kept, error: "" };
}

/**
 * removeEdgeMeshLeftovers on the backend we use and, when it holds tables, on the other one too:
 * EdgeMesh's image may have used the other iptables than the host (its issue #30), and rules in
 * either are in the packet's path. The other backend is only read when it already has tables
 * (legacy: /proc/net/ip_tables_names), so looking never creates any.
 */
export async function removeEdgeMeshLeftoversAnywhere(
  primary: IptablesBackend,
  bridgeIP: string,
  log: Logger,
  options: ExecOptions = {},
): Promise<LeftoverCleanup[]> {
  const results = [await removeEdgeMeshLeftovers(createIptablesExec(primary, options), bridgeIP, log)];
  const other: IptablesBackend = primary === "nft" ? "legacy" : "nft";
  if (await backendHasRules(other, options.prefix ?? [])) results.push(await removeEdgeMeshLeftovers(createIptablesExec(other, options), bridgeIP, log));
  return results;
}

async function backendHasRules(backend: IptablesBackend, prefix: readonly string[]): Promise<boolean> {
  if (backend === "legacy") {
    const names = await spawnCommand([...prefix, "cat", "/proc/net/ip_tables_names"]);
    if (names.code !== 0 || names.stdout.trim() === "") return false;
  }
  const save = await spawnCommand([...prefix, backendBinaries(backend).save]);
  return save.code === 0 && countRules(save.stdout) > 0;
}
