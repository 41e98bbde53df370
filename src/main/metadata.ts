// Picks the metadata source the config asks for: a manifest folder (kubeAPIConfig.manifestDir)
// or the Kubernetes API / KubeEdge MetaServer (with the offline snapshot under stateDir). Both
// feed the same store, so nothing downstream knows which one ran.

import {
  createKubeSource,
  createManifestSource,
  resolveMode,
  type EdgeMeshAgentConfig,
  type ObjectStore,
  type WatchedKind,
} from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";

export interface MetadataSource {
  status(): { ready: boolean; reasons: string[] };
  stop(): Promise<void>;
}

export async function startMetadataSource(
  config: EdgeMeshAgentConfig,
  store: ObjectStore,
  log: Logger,
  metrics: MetricsRegistry,
  /** What the Kubernetes source watches (the gateway adds TLS Secrets); the source's default otherwise. */
  kinds?: readonly WatchedKind[],
): Promise<MetadataSource> {
  const dir = config.kubeAPIConfig.manifestDir;
  if (dir) {
    const source = createManifestSource({ dir, store, log: log.child("manifests") });
    await source.start();
    return {
      status: () => ({ ready: true, reasons: source.errors.map((e) => e.message) }),
      stop: async () => source.stop(),
    };
  }
  const connection = resolveMode(config.kubeAPIConfig);
  const kube = createKubeSource({ ...connection, store, stateDir: config.commonConfig.stateDir, log, metrics, kinds });
  await kube.start();
  return {
    status() {
      const s = kube.status();
      const reasons: string[] = [];
      if (s.degraded) reasons.push(`degraded: ${s.degraded}`);
      if (s.error) reasons.push(s.error);
      return { ready: s.ready, reasons };
    },
    stop: () => kube.stop(),
  };
}
