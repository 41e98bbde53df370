// One list+watch loop per resource, on top of fetch-tls.ts.
//
// Why not @kubernetes/client-node's ListWatch (makeInformer): read in its dist/cache.js and
// dist/watch.js (2.0.1), it
// - applies a relist as per-object delete callbacks followed by add callbacks, so a consumer
//   sees partial states and cannot replace a kind atomically;
// - stops for good on any error other than 410 or a client timeout (a refused or reset
//   connection ends the informer until someone calls start() again), and its reconnect backoff
//   has no jitter, so a fleet of edge agents reconnects in lockstep after an outage;
// - never asks for bookmarks (allowWatchBookmarks) nor sets timeoutSeconds, and does not page
//   lists (limit/continue);
// - calls `fetch` imported from undici directly, with the TLS settings on a dispatcher that Bun
//   ignores (see fetch-tls.ts), so it cannot reach a TLS apiserver with a private CA under Bun;
// - keeps its own copy of every object in addition to ours.
// This loop does the same protocol (list, then watch from the list's resourceVersion, resume
// from the last seen one, relist on 410) with those points fixed.

import type { Kind, KubeObject } from "../objects.ts";
import type { KubeFetch } from "./fetch-tls.ts";
import { apiError, isGone, isUnreachable, KubeSourceError } from "./errors.ts";
import { listAll } from "./list.ts";
import { trimObject } from "./trim.ts";
import { backoffDelay, createSleeper, type Clock, type Logger, type MetricsRegistry } from "./deps.ts";
import type { Reachability } from "./reachability.ts";

export interface ResourceRef {
  kind: Kind;
  /** Collection path, e.g. "/api/v1/services" or "/apis/discovery.k8s.io/v1/endpointslices". */
  path: string;
  apiVersion: string;
  /** A 404 means "not installed" (CRDs): report an empty list, log once, keep polling slowly. */
  optional?: boolean;
  /** A field selector for list and watch (Secrets: only type kubernetes.io/tls). */
  fieldSelector?: string;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface InformerHandlers {
  /** A complete, consistent list of the kind (first sync and every relist). */
  onList(items: KubeObject[]): void;
  onEvent(type: WatchEventType, obj: KubeObject): void;
  /** Failure / recovery notices, for status. `err` undefined means healthy again. */
  onHealth?(err: Error | undefined): void;
}

export interface InformerOptions {
  resource: ResourceRef;
  fetch: KubeFetch;
  handlers: InformerHandlers;
  log: Logger;
  metrics: MetricsRegistry;
  clock: Clock;
  random?: () => number;
  /** Objects per list page (client-go's pager uses 500). */
  pageSize?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Server-side watch timeout, drawn uniformly from [min, max] (client-go: 5 to 10 min). */
  watchTimeoutSeconds?: readonly [number, number];
  /** Reconnect when a watch says nothing (not even a bookmark) for this long. */
  watchIdleMs?: number;
  /** How often an optional resource that is not served (a CRD not installed) is looked for again. */
  missingPollMs?: number;
  /** With `reachability`: after a failure without an answer, retry on our own only after this
   * (jittered down to half); the probe's news of the API's return comes first. */
  unreachableRetryMs?: number;
  /** Shared by the source's informers: a failure without an answer from the API starts its
   * probe, and the probe's first answer ends this informer's backoff at once. */
  reachability?: Reachability;
}

export interface Informer {
  start(): void;
  stop(): Promise<void>;
  readonly synced: boolean;
  readonly missing: boolean;
  readonly resourceVersion: string;
  readonly lastError: Error | undefined;
}

const second = 1000;
const minute = 60 * second;

export function createInformer(o: InformerOptions): Informer {
  const { resource, handlers, log, clock } = o;
  const random = o.random ?? Math.random;
  const pageSize = o.pageSize ?? 500;
  const backoffInitialMs = o.backoffInitialMs ?? 800;
  const backoffMaxMs = o.backoffMaxMs ?? 30 * second;
  const [tMin, tMax] = o.watchTimeoutSeconds ?? [300, 600];
  const watchIdleMs = o.watchIdleMs ?? 5 * minute;
  const missingPollMs = o.missingPollMs ?? minute;
  const unreachableRetryMs = o.unreachableRetryMs ?? 30 * second;
  const labels = { kind: resource.kind };
  const m = {
    lists: o.metrics.counter("kube_lists_total", "Complete lists of a kind from the Kubernetes API", labels),
    relists: o.metrics.counter("kube_relists_total", "Relists after 410 Gone (resourceVersion too old)", labels),
    events: o.metrics.counter("kube_watch_events_total", "Watch events applied", labels),
    bookmarks: o.metrics.counter("kube_watch_bookmarks_total", "Watch bookmarks received", labels),
    errors: o.metrics.counter("kube_watch_errors_total", "Failed lists or watches (followed by a backoff)", labels),
    badLines: o.metrics.counter("kube_watch_bad_lines_total", "Watch lines that were not valid JSON events", labels),
    lastSync: o.metrics.gauge("kube_last_sync_timestamp_seconds", "Unix time this kind was last known current: a list completed, or a watch event or bookmark arrived", labels),
  };

  let rv = "";
  /** The last resourceVersion expired (410): the next list must be a consistent read. */
  let expired = false;
  let synced = false;
  let missing = false;
  let lastError: Error | undefined;
  let stopped = true;
  let failures = 0;
  let loop: Promise<void> | undefined;
  let abort: AbortController | undefined;
  const sleeper = createSleeper(clock);
  const sleep = sleeper.sleep;
  const backoffMs = () => backoffDelay(failures, backoffInitialMs, backoffMaxMs, random);
  /** Set while backing off after a failure that got no answer: the API's return ends the wait. */
  let waitingForApi = false;
  const reach = o.reachability;
  let unsubscribe: (() => void) | undefined;

  async function list(): Promise<void> {
    abort = new AbortController();
    const result = await listAll(o.fetch, resource, pageSize, abort.signal, !expired);
    if (result === "missing") {
      if (!missing) log.info("resource not served, treating as empty", { kind: resource.kind, path: resource.path });
      missing = true;
      rv = "";
      handlers.onList([]);
      synced = true;
      healthy(); // "not installed" is an answer, not an outage
      return;
    }
    const { items, resourceVersion: listRv } = result;
    expired = false;
    if (missing) log.info("resource served again", { kind: resource.kind });
    missing = false;
    rv = listRv;
    m.lists.value++;
    m.lastSync.value = clock.now() / 1000;
    handlers.onList(items);
    synced = true;
    failures = 0;
    healthy();
  }

  function healthy(): void {
    if (!lastError) return;
    lastError = undefined;
    handlers.onHealth?.(undefined);
  }

  /** One watch request. Returns "expired" on 410, "closed" when the server ended it. */
  async function watch(): Promise<"expired" | "closed"> {
    const timeout = Math.round(tMin + random() * (tMax - tMin));
    const q = new URLSearchParams({ watch: "true", resourceVersion: rv, allowWatchBookmarks: "true", timeoutSeconds: String(timeout) });
    if (resource.fieldSelector) q.set("fieldSelector", resource.fieldSelector);
    const ctl = (abort = new AbortController());
    // A silent, half-dead connection (cloud link cut without a RST) must not hang us forever.
    let idle = clock.setTimeout(() => ctl.abort(), watchIdleMs);
    const deadline = clock.setTimeout(() => ctl.abort(), (timeout + 30) * second);
    const started = clock.now();
    let delivered = 0;
    try {
      const res = await o.fetch.request(`${resource.path}?${q}`, { signal: ctl.signal });
      if (res.status !== 200) throw await apiError(`watch ${resource.path}`, res);
      healthy();
      if (!res.body) throw new KubeSourceError(`watch ${resource.path}: empty body`);
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of res.body) {
        clock.clearTimeout(idle);
        idle = clock.setTimeout(() => ctl.abort(), watchIdleMs);
        buffered += decoder.decode(chunk, { stream: true });
        // Walk the lines with an index and cut the buffer once per chunk, not once per line.
        let start = 0;
        let nl: number;
        while ((nl = buffered.indexOf("\n", start)) >= 0) {
          const line = buffered.slice(start, nl).trim();
          start = nl + 1;
          if (!line) continue;
          const outcome = apply(line);
          if (outcome === "expired") return "expired";
          // Only a watch that carried something resets the backoff: one that is accepted and
          // dropped at once, over and over, must still slow down.
          if (delivered++ === 0) failures = 0;
        }
        buffered = buffered.slice(start);
      }
      // A server that closes at once, again and again, must not make us spin.
      if (delivered === 0 && clock.now() - started < second) {
        throw new KubeSourceError(`watch ${resource.path}: closed immediately`);
      }
      return "closed";
    } finally {
      clock.clearTimeout(idle);
      clock.clearTimeout(deadline);
      ctl.abort();
    }
  }

  function apply(line: string): "expired" | void {
    let ev: { type?: string; object?: any };
    try {
      ev = JSON.parse(line);
    } catch {
      m.badLines.value++;
      // A torn line means the stream is broken: resume from the last good resourceVersion.
      throw new KubeSourceError(`watch ${resource.path}: malformed event line`);
    }
    const obj = ev.object;
    switch (ev.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        handlers.onEvent(ev.type, trimObject(obj, resource.kind, resource.apiVersion));
        m.events.value++;
        m.lastSync.value = clock.now() / 1000;
        break;
      case "BOOKMARK":
        m.bookmarks.value++;
        m.lastSync.value = clock.now() / 1000;
        break;
      case "ERROR":
        if (obj?.code === 410) return "expired";
        throw new KubeSourceError(`watch ${resource.path}: ${obj?.message ?? "error event"}`, obj?.code ?? 0, obj?.reason ?? "");
      default:
        m.badLines.value++;
        return;
    }
    const next = obj?.metadata?.resourceVersion;
    if (next) rv = next;
  }

  async function run(): Promise<void> {
    while (!stopped) {
      try {
        if (!rv) {
          await list();
          if (missing) {
            // Not installed: look again now and then (a CRD may be added later).
            await sleep(missingPollMs);
            continue;
          }
        }
        if (stopped) break;
        const outcome = await watch();
        if (outcome === "expired") {
          m.relists.value++;
          log.info("resourceVersion expired, relisting", { kind: resource.kind, resourceVersion: rv });
          rv = "";
          expired = true;
        }
      } catch (err) {
        if (stopped) break;
        if (isGone(err)) {
          m.relists.value++;
          rv = "";
          expired = true;
          continue;
        }
        if (resource.optional && err instanceof KubeSourceError && err.status === 404) {
          rv = ""; // the CRD went away while watched: the relist reports it missing (and empty)
          continue;
        }
        failures++;
        m.errors.value++;
        lastError = err as Error;
        handlers.onHealth?.(lastError);
        const unanswered = reach !== undefined && isUnreachable(err);
        // No answer at all: the source's probe (one request a second for all informers) tells
        // when the API is back; retrying on our own is only the fallback, rarely.
        const delay = unanswered ? backoffDelay(1, unreachableRetryMs, unreachableRetryMs, random) : backoffMs();
        if (unanswered) reach.unreachable();
        log.warn("list/watch failed, retrying", { kind: resource.kind, error: err as Error, retryInMs: delay, resumeFrom: rv || "relist", ...(unanswered ? { orWhenTheApiAnswers: true } : {}) });
        waitingForApi = unanswered;
        try {
          await sleep(delay);
        } finally {
          waitingForApi = false;
        }
      }
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      unsubscribe = reach?.onReturn(() => {
        if (waitingForApi) sleeper.wake();
      });
      loop = run();
    },
    async stop() {
      stopped = true;
      unsubscribe?.();
      abort?.abort();
      sleeper.wake();
      await loop;
    },
    get synced() { return synced; },
    get missing() { return missing; },
    get resourceVersion() { return rv; },
    get lastError() { return lastError; },
  };
}
