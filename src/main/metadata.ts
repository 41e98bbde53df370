// Picks the metadata source the config asks for: a manifest folder (kubeAPIConfig.manifestDir)
// or the Kubernetes API / KubeEdge MetaServer. Both feed the same store.

import { createManifestSource, type EdgeMeshAgentConfig, type ObjectStore } from "../control/index.ts";
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
  _metrics: MetricsRegistry,
): Promise<MetadataSource> {
  const dir = config.kubeAPIConfig.manifestDir;
  if (dir) {
    const source = createManifestSource({ dir, store, log: log.child("manifests") });
    await source.start();
    return {
      status: () => ({ ready: true, reasons: source.errors.map((e) => String(e.message ?? e)) }),
      stop: async () => source.stop(),
    };
  }
  throw new Error("kubeAPIConfig: the Kubernetes API source is not wired yet; set kubeAPIConfig.manifestDir");
}
