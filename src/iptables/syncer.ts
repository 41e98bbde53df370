// Keeps the kernel's nat rules equal to the rendered desired state. kube-proxy's pattern: render
// everything, apply once with iptables-restore --noflush (atomic per table, so a failed apply
// leaves the last good rules in place), then ensure the jumps. A bounded-frequency runner merges
// bursts of updates and resyncs periodically; a separate check looks for flushed chains and
// missing or displaced jumps and asks for a full sync when it finds any.

import { createRunner, EMPTY_TABLE, systemClock, type Clock, type RouteTable, type Runner } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import { CONTROL_BUCKETS_SECONDS, type MetricsRegistry } from "../metrics/index.ts";
import {
  CHECK_COST_FACTOR,
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_MIN_SYNC_INTERVAL_MS,
  DEFAULT_RESYNC_INTERVAL_MS,
  RETRY_INITIAL_MS,
  RETRY_MAX_MS,
} from "./constants.ts";
import { clearUdpFlows, staleUdpDestinations, udpTargets, type UdpTargets } from "./conntrack.ts";
import type { IptablesExec } from "./exec.ts";
import { ensureJumps, findProblems, removeJumps } from "./jumps.ts";
import { renderCleanup, renderRules, type ListenerAddress, type RenderInput } from "./render.ts";

export interface IptablesSyncerOptions {
  readonly exec: IptablesExec;
  readonly log: Logger;
  readonly metrics: MetricsRegistry;
  readonly clock?: Clock;
  /** At most one apply per this many ms (bursts of updates merge). */
  readonly minIntervalMs?: number;
  /** Full re-apply at least this often; 0 disables. */
  readonly resyncIntervalMs?: number;
  /** Look for flushed chains / lost jumps this often; 0 disables. */
  readonly checkIntervalMs?: number;
  /** Optional cluster DNS interception (see RenderInput.dns). */
  readonly dns?: RenderInput["dns"];
}

export interface IptablesSyncStatus {
  /** Table version of the last successful apply; -1 before the first. */
  readonly appliedVersion: number;
  readonly consecutiveFailures: number;
  readonly lastError: string;
}

export interface IptablesSyncer {
  /** New desired state; applied soon (bursts merged). Cheap; call on every table / listener change. */
  update(table: RouteTable, listeners: ReadonlyMap<string, ListenerAddress>): void;
  start(): void;
  /** Settles when no apply is running or pending (tests, shutdown ordering). */
  idle(): Promise<void>;
  status(): IptablesSyncStatus;
  /** Stop syncing, then remove our jumps and chains (unless removeRules is false, which leaves
   * them as a crash would). Never rejects (errors are logged). */
  stop(options?: { removeRules?: boolean }): Promise<void>;
}

export function createIptablesSyncer(options: IptablesSyncerOptions): IptablesSyncer {
  const { exec, log, metrics } = options;
  const clock = options.clock ?? systemClock;
  const checkInterval = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  const ok = metrics.counter("iptables_sync_total", "iptables-restore applies", { result: "ok" });
  const failed = metrics.counter("iptables_sync_total", "iptables-restore applies", { result: "error" });
  const repairs = metrics.counter("iptables_repairs_total", "Resyncs after our rules were changed by someone else");
  const ruleCount = metrics.gauge("iptables_rules", "Rules in our nat chains after the last apply");
  // kube-proxy's sync_proxy_rules_duration_seconds and _last_timestamp_seconds, for ours.
  const syncSeconds = metrics.histogram("iptables_sync_duration_seconds", "Time to apply the rule set (iptables-restore and the jumps), successful applies", CONTROL_BUCKETS_SECONDS);
  const lastSync = metrics.gauge("iptables_last_sync_timestamp_seconds", "Unix time of the last successful apply");

  let table: RouteTable = EMPTY_TABLE;
  let listeners: ReadonlyMap<string, ListenerAddress> = new Map();
  let appliedText: string | null = null;
  let appliedVersion = -1;
  let appliedUdp: UdpTargets | null = null;
  let warnedNoConntrack = false;
  let needsFullSync = true;
  let requested = false;
  let failures = 0;
  let lastError = "";
  let inFlight: Promise<void> | null = null;
  let again = false;
  let started = false;
  let stopped = false;
  let runner: Runner | null = null;
  let checkTimer: unknown = undefined;
  let checking: Promise<void> | null = null;

  const sync = async (): Promise<void> => {
    // A run nobody asked for is the periodic resync: apply even if the text did not change.
    const force = needsFullSync || !requested;
    requested = false;
    const text = renderRules({ table, listeners, dns: options.dns });
    if (!force && text === appliedText) return;
    const version = table.version;
    const udp = udpTargets(table, listeners);
    const t0 = performance.now();
    try {
      const first = appliedText === null;
      await exec.restore(text);
      appliedText = text;
      const changed = await ensureJumps(exec);
      // Only now is the version fully in force (chains and the jumps into them).
      appliedVersion = version;
      if (changed.length > 0) log.info(first ? "jumps installed" : "jumps repaired", { changes: changed });
      const stale = staleUdpDestinations(appliedUdp, udp);
      appliedUdp = udp;
      if (stale.length > 0) {
        if (!exec.conntrack && !warnedNoConntrack) {
          warnedNoConntrack = true;
          log.warn("conntrack tool not installed: UDP flows keep their old target until their conntrack entry expires");
        }
        const bad = await clearUdpFlows(exec, stale);
        if (bad > 0) log.warn("clearing UDP conntrack entries failed", { destinations: stale.length, failed: bad });
      }
      needsFullSync = false;
      failures = 0;
      lastError = "";
      ok.value++;
      syncSeconds.observe((performance.now() - t0) / 1000);
      lastSync.value = clock.now() / 1000;
      ruleCount.value = countRuleLines(text);
      log.debug("rules applied", { version, rules: ruleCount.value, backend: exec.backend });
    } catch (err) {
      failures++;
      failed.value++;
      needsFullSync = true;
      lastError = err instanceof Error ? err.message : String(err);
      const retryMs = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (failures - 1));
      log.error("iptables sync failed; the last good rules stay in place", { version, error: lastError, retryMs });
      runner?.retryAfter(retryMs);
    }
  };

  // The control runner's work function is synchronous; applies are serialised here, and a
  // request that arrives during an apply becomes one more run afterwards.
  const kick = (): void => {
    if (stopped) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = sync().finally(() => {
      inFlight = null;
      if (again && !stopped) {
        again = false;
        requested = true;
        runner?.request();
      }
    });
  };

  const check = (): Promise<void> => {
    if (stopped || checking || inFlight || appliedText === null) return Promise.resolve();
    checking = runCheck().finally(() => {
      checking = null;
    });
    return checking;
  };

  const runCheck = async (): Promise<void> => {
    try {
      const problems = await findProblems(exec);
      if (problems.length > 0 && !stopped) {
        repairs.value++;
        log.warn("our iptables rules were changed by someone else; resyncing", { problems });
        needsFullSync = true;
        requested = true;
        runner?.request();
      }
    } catch (err) {
      log.warn("iptables check failed", { error: err });
    }
  };

  let lastCheckMs = 0;
  const scheduleCheck = (): void => {
    if (stopped || checkInterval <= 0) return;
    checkTimer = clock.setTimeout(() => {
      const began = clock.now();
      void check().finally(() => {
        lastCheckMs = clock.now() - began;
        scheduleCheck();
      });
    }, Math.max(checkInterval, CHECK_COST_FACTOR * lastCheckMs));
  };

  return {
    update(t, l) {
      table = t;
      listeners = l;
      requested = true;
      runner?.request();
    },
    start() {
      if (started || stopped) return;
      started = true;
      runner = createRunner({
        run: kick,
        minIntervalMs: options.minIntervalMs ?? DEFAULT_MIN_SYNC_INTERVAL_MS,
        maxIntervalMs: options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS,
        clock,
        onError: (err: unknown) => log.error("iptables runner failed", { error: err }),
      });
      requested = true;
      runner.request();
      scheduleCheck();
    },
    async idle() {
      while (inFlight || checking) await (inFlight ?? checking);
    },
    status: () => ({ appliedVersion, consecutiveFailures: failures, lastError }),
    async stop(stopOptions) {
      if (stopped) return;
      stopped = true;
      runner?.stop();
      if (checkTimer !== undefined) clock.clearTimeout(checkTimer);
      while (inFlight || checking) await (inFlight ?? checking);
      if (stopOptions?.removeRules === false) return;
      try {
        const jumps = await removeJumps(exec);
        await exec.restore(renderCleanup());
        log.info("iptables rules removed", { jumps });
      } catch (err) {
        log.error("iptables cleanup failed", { error: err });
      }
    },
  };
}

function countRuleLines(text: string): number {
  let n = 0;
  for (const line of text.split("\n")) if (line.startsWith("-A ")) n++;
  return n;
}
