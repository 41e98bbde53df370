// Public surface of iptables interception: render the desired nat rules from the route table,
// keep the kernel in sync with them, and remove them again; remove EdgeMesh's leftovers once.
export { renderRules, renderCleanup, isIPv4, type ListenerAddress, type RenderInput } from "./render.ts";
export { createIptablesSyncer, type IptablesSyncer, type IptablesSyncerOptions, type IptablesSyncStatus } from "./syncer.ts";
export { createIptablesExec, spawnCommand, type IptablesBackend, type IptablesExec, type ExecOptions, type ExecResult } from "./exec.ts";
export { detectIptablesBackend, type DetectOptions } from "./detect.ts";
export { ensureJumps, removeJumps, findProblems } from "./jumps.ts";
export { udpTargets, staleUdpDestinations, clearUdpFlows, type UdpTargets } from "./conntrack.ts";
export { findEdgeMeshLeftovers, renderLeftoverCleanup, parseSave, EDGEMESH_NAT_CHAINS, EDGEMESH_FILTER_CHAINS, type Leftovers, type TableLeftovers } from "./leftovers.ts";
export { removeEdgeMeshLeftovers, removeEdgeMeshLeftoversAnywhere, type LeftoverCleanup } from "./cleanup-leftovers.ts";
export { IptablesError } from "./errors.ts";
export * from "./constants.ts";
