// Chain names and timings of the iptables sync. The names are our own: EdgeMesh's agent since v1.12
// uses kube-proxy's userspace-proxier names (KUBE-PORTALS-*, KUBE-NODEPORT-*; leftovers.ts removes
// what a killed one leaves), and KUBE-* belongs to kube-proxy. Its v1.10-1.11 fork used these same
// EDGEMESH-* names: such chains are replaced wholesale and stale jumps to them removed.

const second = 1000;

/** nat chain for traffic from pods (jumped to from PREROUTING). */
export const CHAIN_PORTALS_CONTAINER = "EDGEMESH-PORTALS-CONTAINER";
/** nat chain for traffic from host processes (jumped to from OUTPUT). */
export const CHAIN_PORTALS_HOST = "EDGEMESH-PORTALS-HOST";
/** NodePorts for pod traffic; entered from PORTALS-CONTAINER for local destinations only. */
export const CHAIN_NODEPORT_CONTAINER = "EDGEMESH-NODEPORT-CONTAINER";
/** NodePorts for host traffic; entered from PORTALS-HOST for local destinations only. */
export const CHAIN_NODEPORT_HOST = "EDGEMESH-NODEPORT-HOST";

/** Every chain we own, sorted (the order they are declared in the restore text). */
export const OWN_CHAINS: readonly string[] = [
  CHAIN_NODEPORT_CONTAINER,
  CHAIN_NODEPORT_HOST,
  CHAIN_PORTALS_CONTAINER,
  CHAIN_PORTALS_HOST,
];

/** The only rules we write into built-in chains. One jump per built-in chain keeps "first"
 * well defined; the NodePort chains hang off the portal chains, after the ClusterIP rules. */
export interface Jump {
  readonly from: "PREROUTING" | "OUTPUT";
  readonly to: string;
  readonly comment: string;
}
export const JUMPS: readonly Jump[] = [
  { from: "PREROUTING", to: CHAIN_PORTALS_CONTAINER, comment: "edgemesh service portals" },
  { from: "OUTPUT", to: CHAIN_PORTALS_HOST, comment: "edgemesh service portals" },
];

/** Comment of the no-op rule that opens each of our chains: if it is missing, someone flushed
 * (or deleted) the chain and we resync. A rule without a target only counts packets. */
export const CANARY_COMMENT = "edgemesh canary";

/** Merge bursts of table updates: at most one apply per this interval. */
export const DEFAULT_MIN_SYNC_INTERVAL_MS = 1 * second / 5;
/** Re-apply everything this often even when nothing changed (kube-proxy's safety net). */
export const DEFAULT_RESYNC_INTERVAL_MS = 60 * second;
/** Look for flushed chains / missing jumps this often. Six short iptables calls per check. */
export const DEFAULT_CHECK_INTERVAL_MS = 2 * second;
/** A check costs time proportional to the chain size (with 10,000 services about 0.7 s on nft,
 * where -C reads the whole chain); the next check waits at least this many times as long, so
 * checking never takes more than a tenth of the time. */
export const CHECK_COST_FACTOR = 10;
/** First retry after a failed apply; doubles per failure up to the cap. */
export const RETRY_INITIAL_MS = 1 * second;
export const RETRY_MAX_MS = 30 * second;
