// Routes of the Edge CNI: every tunneled pod CIDR points into the TUN device. The desired set
// comes whole from the RouteTable (control/compile/cni.ts); planRoutes() compares it with the
// kernel's main table and the syncer applies the difference with one `ip -batch`. Our routes
// carry their own protocol number, so only routes we made are ever removed, and a prefix that
// another device already routes (the primary CNI's own route) is left alone and reported.
// Routes live on the TUN device: they vanish with it (SIGTERM, kill -9), so a restart never
// finds duplicates.

import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { HostError } from "./errors.ts";

/** rtnetlink protocol of our routes (`ip route show proto 152`); unused by iproute2's names. */
export const ROUTE_PROTO = 152;
/** Re-read and re-apply this often, so a route deleted by hand comes back. */
export const ROUTE_RESYNC_MS = 30_000;

export interface RouteEntry {
  /** "10.244.2.0/24" ("default" and host routes as ip prints them; normalized by the plan). */
  dst: string;
  dev?: string;
  protocol?: string | number;
  prefsrc?: string;
}

export interface RoutePlan {
  /** CIDRs to (re)install on the device. */
  add: string[];
  /** Our routes on the device that are no longer wanted. */
  remove: string[];
  /** Wanted CIDRs another device already routes: left alone. */
  conflicts: { cidr: string; dev: string }[];
  /** Wanted CIDRs already in place. */
  kept: number;
}

/** Pure: what to change so that exactly `desired` (each with `src`, if given) points into `device`. */
export function planRoutes(device: string, desired: readonly string[], current: readonly RouteEntry[], src?: string): RoutePlan {
  const norm = (dst: string) => (dst === "default" ? "0.0.0.0/0" : dst.includes("/") ? dst : `${dst}/32`);
  const ours = new Map<string, RouteEntry>();
  const others = new Map<string, string>();
  for (const r of current) {
    const dst = norm(r.dst);
    if (r.dev === device) {
      if (String(r.protocol) === String(ROUTE_PROTO)) ours.set(dst, r);
    } else if (!others.has(dst)) others.set(dst, r.dev ?? "?");
  }
  const plan: RoutePlan = { add: [], remove: [], conflicts: [], kept: 0 };
  const wanted = new Set<string>();
  for (const cidr of desired) {
    wanted.add(cidr);
    const other = others.get(cidr);
    if (other !== undefined && !ours.has(cidr)) {
      plan.conflicts.push({ cidr, dev: other });
      continue;
    }
    const have = ours.get(cidr);
    if (have !== undefined && (have.prefsrc ?? undefined) === src) plan.kept++;
    else plan.add.push(cidr);
  }
  for (const dst of ours.keys()) if (!wanted.has(dst)) plan.remove.push(dst);
  return plan;
}

/** The `ip -batch` lines for a plan. */
export function routeCommands(device: string, plan: RoutePlan, src?: string): string[] {
  const lines: string[] = [];
  for (const cidr of plan.remove) lines.push(`route del ${cidr} dev ${device} proto ${ROUTE_PROTO}`);
  for (const cidr of plan.add) lines.push(`route replace ${cidr} dev ${device} proto ${ROUTE_PROTO}${src ? ` src ${src}` : ""}`);
  return lines;
}

export interface RouteSyncerOptions {
  device: string;
  /** Prepended to `ip` (tests: inside a namespace). */
  prefix?: readonly string[];
  /** Source address for traffic this node itself sends to remote pods (an address of ours in our
   * own pod CIDR, so the answer is routed back through the tunnel); read at every sync. */
  src?: () => string | undefined;
  log: Logger;
  metrics: MetricsRegistry;
  resyncMs?: number;
}

export interface RouteSyncer {
  /** Desired tunneled CIDRs; applied now or right after a sync in progress. */
  update(cidrs: readonly string[]): void;
  /** Resolves when everything requested so far is applied (tests, shutdown). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export function createRouteSyncer(o: RouteSyncerOptions): RouteSyncer {
  const installed = o.metrics.gauge("cni_routes", "Pod CIDR routes pointing into the Edge CNI's TUN device");
  const conflicts = o.metrics.gauge("cni_route_conflicts", "Tunneled pod CIDRs left alone because another device routes them");
  const failures = o.metrics.counter("cni_route_sync_failures_total", "Route syncs that failed (retried at the next change or resync)");
  let desired: readonly string[] = [];
  let running: Promise<void> | undefined;
  let dirty = false;
  let stopped = false;
  let lastConflicts = "";

  const ipRun = async (args: string[], stdin?: string): Promise<string> => {
    const proc = Bun.spawn([...(o.prefix ?? []), "ip", ...args], { stdin: stdin === undefined ? "ignore" : new Response(stdin), stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new HostError(`ip ${args.join(" ")} failed (exit ${code}): ${err.trim()}`);
    return out;
  };

  const syncOnce = async (): Promise<void> => {
    const want = desired;
    const src = o.src?.();
    const current = JSON.parse((await ipRun(["-j", "-4", "route", "show", "table", "main"])) || "[]") as RouteEntry[];
    const plan = planRoutes(o.device, want, current, src);
    const lines = routeCommands(o.device, plan, src);
    if (lines.length > 0) {
      await ipRun(["-force", "-batch", "-"], lines.join("\n") + "\n");
      o.log.info("routes synced", { device: o.device, added: plan.add.length, removed: plan.remove.length, kept: plan.kept, src: src ?? "" });
    }
    installed.value = plan.add.length + plan.kept;
    conflicts.value = plan.conflicts.length;
    const text = plan.conflicts.map((c) => `${c.cidr} (dev ${c.dev})`).join(", ");
    if (text !== "" && text !== lastConflicts) o.log.warn("pod CIDRs routed by another device are left alone: pods there are reached the way that device goes", { cidrs: text });
    lastConflicts = text;
  };

  const kick = (): void => {
    if (stopped) return;
    if (running !== undefined) {
      dirty = true;
      return;
    }
    running = (async () => {
      do {
        dirty = false;
        try {
          await syncOnce();
        } catch (err) {
          failures.value++;
          o.log.error("route sync failed", { device: o.device, error: err as Error });
        }
      } while (dirty && !stopped);
    })().finally(() => {
      running = undefined;
    });
  };

  const timer = setInterval(kick, o.resyncMs ?? ROUTE_RESYNC_MS);
  timer.unref?.();

  return {
    update(cidrs) {
      desired = [...cidrs];
      kick();
    },
    async settled() {
      while (running !== undefined) await running;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (running !== undefined) await running;
    },
  };
}
