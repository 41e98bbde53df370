// The Kubernetes metadata source: discovery, one informer per kind, the object store, and the
// offline snapshot. It writes into the same ObjectStore as the manifest source; compile() cannot
// tell them apart.
//
// The store is written only through mirror.ts (first sync in one replace, relists as one
// replace, events batched per tick); transient errors change nothing in the store.
// Offline: if the API cannot be reached at start, the last snapshot is loaded (one replace) and
// the source reports "stale metadata since T" until live data replaces it.

import { KINDS, type Kind, type KubeObject } from "../objects.ts";
import type { ObjectStore } from "../store.ts";
import { backoffDelay, createSleeper, systemClock, type Clock, type Logger, type MetricsRegistry } from "./deps.ts";
import { discoverResources, DEFAULT_KINDS, type WatchedKind } from "./discovery.ts";
import { createKubeFetch, type KubeFetch } from "./fetch-tls.ts";
import { createInformer, type Informer, type InformerOptions, type ResourceRef } from "./informers.ts";
import { createStoreMirror } from "./mirror.ts";
import type { KubeConnection, KubeMode, KubeTls } from "./modes.ts";
import { createPersister, type Persister } from "./persist.ts";
import { loadSnapshot } from "./snapshot.ts";
import { isUnreachable } from "./errors.ts";
import { createReachability, versionProbe, type Reachability, type ReachabilityOptions } from "./reachability.ts";

export interface KubeSourceOptions {
  mode: KubeMode;
  server?: string;
  kubeConfigPath?: string;
  tls?: KubeTls;
  tokenFile?: string;
  contentType?: string;
  store: ObjectStore;
  /** commonConfig.stateDir: where metadata.json lives; no offline snapshot without it. */
  stateDir?: string;
  log: Logger;
  metrics: MetricsRegistry;
  clock?: Clock;
  random?: () => number;
  kinds?: readonly WatchedKind[];
  /** Minimum time between two snapshot writes. */
  snapshotIntervalMs?: number;
  /** How long start() waits for the first full sync before it returns (then: snapshot or not ready). */
  initialSyncTimeoutMs?: number;
  /** Informer tunables. backoffMaxMs defaults to 5 s in edge mode (the MetaServer is local and a
   * refused connection costs nothing) and to client-go's 30 s otherwise (many agents share one
   * cloud apiserver). An API that does not answer at all is probed instead (reachability.ts): its
   * return ends every backoff at once. */
  informer?: Pick<InformerOptions, "pageSize" | "backoffInitialMs" | "backoffMaxMs" | "watchTimeoutSeconds" | "watchIdleMs" | "missingPollMs" | "unreachableRetryMs">;
  /** The probe that notices the API's return (reachability.ts); defaults: every 1 s, 2.5 s timeout. */
  probe?: Pick<ReachabilityOptions, "intervalMs" | "timeoutMs" | "flapWindowMs" | "flapMaxIntervalMs" | "flapResetMs">;
  /** Why this mode was chosen (resolveMode().reason), logged at start. */
  reason?: string;
  /** Test hook: the fetch under the TLS layer. */
  fetch?: NonNullable<Parameters<typeof createKubeFetch>[1]>["fetch"];
}

export interface KindStatus {
  kind: Kind;
  path: string;
  synced: boolean;
  missing: boolean;
  resourceVersion: string;
  objects: number;
  error?: string;
}

export interface KubeSourceStatus {
  ready: boolean;
  /** True once the store holds live data from the API. */
  live: boolean;
  mode: KubeMode;
  server: string;
  /** Set while serving from the snapshot or while the API is unreachable. */
  degraded?: string;
  /** Why the source is not ready (no live data and no snapshot). */
  error?: string;
  kinds: KindStatus[];
}

export interface KubeSource {
  start(): Promise<void>;
  stop(): Promise<void>;
  ready(): boolean;
  status(): KubeSourceStatus;
}

/** Kinds this source owns in the store; Secrets only when asked to watch them (the gateway). */
const OWNED: readonly Kind[] = KINDS.filter((k) => k !== "Secret");
/** Never written to the offline snapshot: private keys do not go to disk. */
const NOT_PERSISTED: ReadonlySet<Kind> = new Set<Kind>(["Secret"]);

export function createKubeSource(o: KubeSourceOptions): KubeSource {
  const clock = o.clock ?? systemClock;
  const random = o.random ?? Math.random;
  const log = o.log.child("kube");
  const sleeper = createSleeper(clock);
  const tunables = { backoffInitialMs: 800, backoffMaxMs: o.mode === "edge" ? 5_000 : 30_000, ...o.informer };
  const informers: { ref: ResourceRef; informer: Informer }[] = [];
  const owned: readonly Kind[] = (o.kinds ?? DEFAULT_KINDS).includes("Secret") ? [...OWNED, "Secret"] : OWNED;
  const failingSince = new Map<Kind | "discovery", { at: number; error: Error }>();
  const gauges = {
    live: o.metrics.gauge("kube_live", "1 when the store holds live data from the Kubernetes API"),
    stale: o.metrics.gauge("kube_stale", "1 while serving the offline snapshot"),
  };

  let fetcher: KubeFetch | undefined;
  let persister: Persister | undefined;
  let reach: Reachability | undefined;
  let stopped = false;
  let staleSince: number | undefined;
  /** Why the snapshot could not be used (for status), when that happened. */
  let snapshotProblem: string | undefined;
  let connectLoop: Promise<void> | undefined;
  let settle: (() => void) | undefined;

  const noteFailure = (what: Kind | "discovery", error: Error | undefined) => {
    if (!error) failingSince.delete(what);
    else if (!failingSince.has(what)) failingSince.set(what, { at: clock.now(), error });
    else failingSince.get(what)!.error = error;
    if (error) settle?.(); // start() stops waiting at the first failure
  };

  const mirror = createStoreMirror({
    store: o.store,
    owned,
    allSynced: () => informers.length > 0 && informers.every((i) => i.informer.synced),
    onLive() {
      if (staleSince !== undefined) log.info("API reachable again: switched from the snapshot to live data", { staleSince: new Date(staleSince).toISOString() });
      staleSince = undefined;
      gauges.live.value = 1;
      gauges.stale.value = 0;
      persister?.changed();
      settle?.();
    },
    onChanged: () => persister?.changed(),
  });

  async function connect(f: KubeFetch, reach: Reachability): Promise<void> {
    let attempt = 0;
    let refs: ResourceRef[] | undefined;
    // The API's return ends the discovery backoff (the informers subscribe on their own).
    const unsubscribe = reach.onReturn(() => sleeper.wake());
    while (!stopped && !refs) {
      try {
        refs = await discoverResources(f, o.kinds ?? DEFAULT_KINDS);
        noteFailure("discovery", undefined);
      } catch (err) {
        attempt++;
        noteFailure("discovery", err as Error);
        if (isUnreachable(err)) reach.unreachable();
        const delay = backoffDelay(attempt, tunables.backoffInitialMs, tunables.backoffMaxMs, random);
        log.warn("cannot reach the Kubernetes API, retrying", { server: f.server, error: err as Error, retryInMs: delay });
        await sleeper.sleep(delay);
      }
    }
    unsubscribe();
    if (stopped || !refs) return;
    log.info("watching", { server: f.server, mode: o.mode, why: o.reason, resources: refs.map((r) => r.path) });
    for (const ref of refs) {
      const informer = createInformer({ ...tunables, reachability: reach, resource: ref, fetch: f, handlers: { ...mirror.handlers(ref.kind), onHealth: (err) => noteFailure(ref.kind, err) }, log, metrics: o.metrics, clock, random });
      informers.push({ ref, informer });
      informer.start();
    }
  }

  async function fallBackToSnapshot(): Promise<void> {
    if (mirror.live) return;
    const first = [...failingSince.values()][0];
    const why = first ? first.error.message : "initial sync did not finish in time";
    if (!o.stateDir) {
      log.error("Kubernetes API unreachable and no stateDir for a snapshot: not ready, retrying", { error: why });
      return;
    }
    try {
      const snap = await loadSnapshot(o.stateDir);
      if (!snap) {
        log.error("Kubernetes API unreachable and no snapshot yet: not ready, retrying", { error: why, stateDir: o.stateDir });
        return;
      }
      if (mirror.live) return; // the API came back while we were reading
      const view: Partial<Record<Kind, KubeObject[]>> = {};
      for (const kind of owned) view[kind] = NOT_PERSISTED.has(kind) ? [] : (snap.objects[kind] ?? []);
      o.store.replace(view);
      staleSince = snap.savedAt;
      gauges.stale.value = 1;
      log.warn("Kubernetes API unreachable: serving stale metadata from the snapshot", { since: new Date(snap.savedAt).toISOString(), error: why });
    } catch (err) {
      snapshotProblem = (err as Error).message;
      log.error("offline snapshot unusable, ignored", { error: err as Error });
    }
  }

  return {
    async start() {
      stopped = false;
      fetcher = await createKubeFetch(
        { mode: o.mode, server: o.server, kubeConfigPath: o.kubeConfigPath, tls: o.tls, tokenFile: o.tokenFile, contentType: o.contentType ?? "application/json", reason: "" },
        { fetch: o.fetch, now: () => clock.now() },
      );
      if (o.stateDir) {
        persister = createPersister({ stateDir: o.stateDir, server: fetcher.server, clock, log, metrics: o.metrics, intervalMs: o.snapshotIntervalMs ?? 5000, view: () => persistedView(mirror.view()), enabled: () => mirror.live });
      }
      if (o.contentType?.includes("protobuf")) {
        // EdgeMesh asks for protobuf in the cloud; this client decodes JSON only, which every
        // apiserver and the MetaServer serve. The setting is accepted for compatibility.
        log.info("contentType protobuf requested; using application/json", { contentType: o.contentType });
      }
      reach = createReachability({
        ...o.probe,
        clock,
        random,
        log,
        metrics: o.metrics,
        probe: versionProbe(fetcher),
      });
      const settled = new Promise<void>((resolve) => (settle = resolve));
      const timer = clock.setTimeout(() => settle?.(), o.initialSyncTimeoutMs ?? 10_000);
      connectLoop = connect(fetcher, reach);
      await settled;
      settle = undefined;
      clock.clearTimeout(timer);
      if (!mirror.live && !stopped) await fallBackToSnapshot();
    },

    async stop() {
      stopped = true;
      settle?.();
      sleeper.wake();
      await connectLoop;
      await Promise.all(informers.map((i) => i.informer.stop()));
      reach?.stop();
      await persister?.close();
      fetcher?.close();
    },

    ready: () => mirror.live || staleSince !== undefined,

    status() {
      const live = mirror.live;
      const failing = [...failingSince.values()].sort((a, b) => a.at - b.at)[0];
      let degraded: string | undefined;
      if (!live && staleSince !== undefined) degraded = `stale metadata since ${new Date(staleSince).toISOString()}`;
      else if (live && failing) degraded = `Kubernetes API unreachable since ${new Date(failing.at).toISOString()}: ${failing.error.message}`;
      const ready = live || staleSince !== undefined;
      return {
        ready,
        live,
        mode: o.mode,
        server: fetcher?.server ?? o.server ?? "",
        degraded,
        error: ready
          ? undefined
          : (failing ? `Kubernetes API unreachable: ${failing.error.message}` : "initial sync in progress") +
            (snapshotProblem ? `; offline snapshot unusable: ${snapshotProblem}` : ""),
        kinds: informers.map(({ ref, informer }) => ({
          kind: ref.kind,
          path: ref.path,
          synced: informer.synced,
          missing: informer.missing,
          resourceVersion: informer.resourceVersion,
          objects: mirror.count(ref.kind),
          error: informer.lastError?.message,
        })),
      };
    },
  };
}

/** The mirror's view without the kinds that never go to disk. */
function persistedView(view: Partial<Record<Kind, KubeObject[]>>): Partial<Record<Kind, KubeObject[]>> {
  const out: Partial<Record<Kind, KubeObject[]>> = {};
  for (const kind of Object.keys(view) as Kind[]) if (!NOT_PERSISTED.has(kind)) out[kind] = view[kind];
  return out;
}
