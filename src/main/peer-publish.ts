// Secure mode, writing side: the agent publishes `nodeName -> peerId` where the other agents
// already read metadata: an annotation on its own Node (a merge PATCH through our TLS-correct
// KubeFetch) or, with a manifest folder, a ".edgemesh-peer-<node>.yaml" publication there.
// Failures are retried with backoff; a 403 is logged once, naming the missing permission. The
// publication is kept true: if the Node shows up in the store without our ID (someone removed
// the annotation, the file was deleted) it is written again.

import {
  createKubeFetch,
  NODE_PATCH_PERMISSION,
  objectKey,
  patchNodeAnnotations,
  resolveMode,
  systemClock,
  writePeerManifest,
  type Clock,
  type EdgeMeshAgentConfig,
  type KubeObject,
  type ObjectStore,
} from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { createPeerWatcher, PEER_ID_ANNOTATION } from "./peer-watch.ts";

/** Who publishes: the agent (its Node, PEER_ID_ANNOTATION) or the gateway on a node. */
export interface PublishAs {
  /** The Node written to. */
  readonly node: string;
  readonly annotation: string;
  /** The publisher's own tunnel name (its publication is not a peer to admit). */
  readonly tunnelName: string;
}

/** First retry after a failed publication, doubling up to the maximum. */
const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export interface PeerPublishTarget {
  /** For logs: where the publication goes. */
  readonly where: string;
  /** Republish when the own Node is absent from the store (true for files: absence means the
   * file is gone; false for the API: a Node is created by the kubelet/edged, not by us). */
  readonly restoresMissing: boolean;
  publish(nodeName: string, annotations: Record<string, string>, signal: AbortSignal): Promise<void>;
  close(): void;
}

export function manifestTarget(dir: string, fileTag?: string): PeerPublishTarget {
  return {
    where: `manifest folder ${dir}`,
    restoresMissing: true,
    publish: async (node, annotations) => void (await writePeerManifest(dir, node, annotations, fileTag ?? node)),
    close() {},
  };
}

export function kubeTarget(fetch: Awaited<ReturnType<typeof createKubeFetch>>): PeerPublishTarget {
  return {
    where: `Node annotation on ${fetch.server}`,
    restoresMissing: false,
    publish: async (node, annotations, signal) => void (await patchNodeAnnotations(fetch, node, annotations, signal)),
    close: () => fetch.close(),
  };
}

export interface PeerPublisherOptions {
  nodeName: string;
  peerId: string;
  /** The annotation written on Node `nodeName`; PEER_ID_ANNOTATION (an agent's) by default. */
  annotation?: string;
  target: PeerPublishTarget;
  store: ObjectStore;
  log: Logger;
  metrics: MetricsRegistry;
  clock?: Clock;
  random?: () => number;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface PeerPublisher {
  start(): void;
  stop(): void;
  /** True once the current ID has been written at least once. */
  readonly published: boolean;
}

export function createPeerPublisher(o: PeerPublisherOptions): PeerPublisher {
  const clock = o.clock ?? systemClock;
  const random = o.random ?? Math.random;
  const initial = o.retryInitialMs ?? RETRY_INITIAL_MS;
  const max = o.retryMaxMs ?? RETRY_MAX_MS;
  const ok = o.metrics.counter("tunnel_peer_publish_total", "Publications of this agent's tunnel peer ID (secure mode)");
  const failed = o.metrics.counter("tunnel_peer_publish_failures_total", "Failed publications of this agent's tunnel peer ID (retried)");
  const ownKey = objectKey({ metadata: { name: o.nodeName } });
  const annotationKey = o.annotation ?? PEER_ID_ANNOTATION;
  const annotations = { [annotationKey]: o.peerId };

  let stopped = true;
  let inFlight: AbortController | undefined;
  let timer: unknown;
  let failures = 0;
  let dirty = false;
  let lastSeen: KubeObject | null | undefined;
  let lastError = "";
  let forbiddenLogged = false;
  let published = false;
  let unsubscribe = () => {};

  const attempt = async (): Promise<void> => {
    timer = undefined;
    if (stopped || inFlight) return;
    const abort = (inFlight = new AbortController());
    try {
      await o.target.publish(o.nodeName, annotations, abort.signal);
      if (stopped) return;
      ok.value++;
      failures = 0;
      lastError = "";
      forbiddenLogged = false;
      published = true;
      o.log.info("published the tunnel peer ID", { where: o.target.where, node: o.nodeName, peer: o.peerId });
    } catch (err) {
      if (stopped) return;
      failed.value++;
      failures++;
      const base = Math.min(max, initial * 2 ** Math.min(failures - 1, 20));
      const delay = Math.round(base * (0.5 + random() * 0.5));
      const status = (err as { status?: number }).status;
      if (status === 403) {
        if (!forbiddenLogged) {
          o.log.error(`cannot publish the tunnel peer ID: the API refused PATCH of Node ${o.nodeName} (403 Forbidden); grant the agent's service account ${NODE_PATCH_PERMISSION}; other agents will refuse this node's tunnel until then`, { retryInMs: delay });
        }
        forbiddenLogged = true;
      } else {
        const message = (err as Error).message;
        // One line per distinct failure, not one per retry.
        if (message !== lastError) o.log.warn("publishing the tunnel peer ID failed, retrying", { where: o.target.where, error: message, retryInMs: delay });
        lastError = message;
      }
      timer = clock.setTimeout(() => void attempt(), delay);
      return;
    } finally {
      if (inFlight === abort) inFlight = undefined;
    }
    if (dirty) {
      dirty = false;
      lastSeen = undefined; // look again at whatever changed while we wrote
      check();
    }
  };

  /** On store changes: is our own Node (still) carrying our ID? */
  const check = (): void => {
    if (stopped) return;
    const own = o.store.snapshot().Node.get(ownKey) ?? null;
    if (own === lastSeen) return;
    lastSeen = own;
    const needed = own ? own.metadata.annotations?.[annotationKey] !== o.peerId : o.target.restoresMissing;
    if (!needed) return;
    if (inFlight || timer !== undefined) {
      dirty = true; // decided again once the current attempt is done
      return;
    }
    if (published) o.log.info("own Node lacks our peer ID; publishing again", { node: o.nodeName, where: o.target.where });
    void attempt();
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      lastSeen = o.store.snapshot().Node.get(ownKey) ?? null;
      unsubscribe = o.store.onChange(check);
      void attempt(); // always once at start: the store may hold an older ID of ours
    },
    stop() {
      stopped = true;
      unsubscribe();
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      inFlight?.abort(new Error("agent stopping"));
      o.target.close();
    },
    get published() {
      return published;
    },
  };
}

export interface SecurePeers {
  /** Start publishing our own ID; call after tunnel.start() (the peer ID exists from then on). */
  publish(): Promise<void>;
  stop(): void;
}

/**
 * The agent's secure-mode wiring. Create it before tunnel.start(): the published IDs already in
 * the store become the gater's first allowed set, so no published peer is refused at start.
 */
export function createSecurePeers(
  config: EdgeMeshAgentConfig,
  store: ObjectStore,
  tunnel: Pick<Tunnel, "peerId" | "setAllowedPeers" | "addPeer" | "forgetPeer">,
  log: Logger,
  metrics: MetricsRegistry,
  as: PublishAs = { node: config.nodeName, annotation: PEER_ID_ANNOTATION, tunnelName: config.nodeName },
): SecurePeers {
  const watcher = createPeerWatcher({ store, tunnel, nodeName: as.tunnelName, log, metrics });
  let publisher: PeerPublisher | undefined;
  let stopped = false;
  return {
    async publish() {
      const dir = config.kubeAPIConfig.manifestDir;
      const target = dir ? manifestTarget(dir, as.tunnelName) : kubeTarget(await createKubeFetch(resolveMode(config.kubeAPIConfig)));
      if (stopped) return target.close();
      publisher = createPeerPublisher({ nodeName: as.node, peerId: tunnel.peerId, annotation: as.annotation, target, store, log, metrics });
      publisher.start();
    },
    stop() {
      stopped = true;
      publisher?.stop();
      watcher.stop();
    },
  };
}
