// Public surface of the Kubernetes metadata source (issue 5). Wiring, for the lead:
//
//   const conn = resolveMode(config.kubeAPIConfig);            // Manual / Cloud / Edge, as EdgeMesh
//   const kube = createKubeSource({ ...conn, store, stateDir: config.commonConfig.stateDir, log, metrics });
//   await kube.start();   // resolves once live, or at the first failure (then: snapshot or not ready)
//   kube.ready(); kube.status();   // for /readyz: status().degraded / status().error explain why
//   await kube.stop();    // also writes the last snapshot
export { createKubeSource, type KubeSource, type KubeSourceOptions, type KubeSourceStatus, type KindStatus } from "./source.ts";
export { resolveMode, type KubeApiConfigLike, type KubeConnection, type KubeMode, type KubeTls, DEFAULT_META_SERVER } from "./modes.ts";
export { createKubeFetch, type KubeFetch, type KubeRequestInit, type TlsMaterial } from "./fetch-tls.ts";
export { makeApiClient } from "./api-client.ts";
export { DEFAULT_KINDS, GATEWAY_KINDS, TLS_SECRET_SELECTOR, type WatchedKind } from "./discovery.ts";
export { loadSnapshot, saveSnapshot, SnapshotError, SNAPSHOT_FILE, type MetadataSnapshot } from "./snapshot.ts";
export { KubeSourceError } from "./errors.ts";
export { patchNodeAnnotations, MERGE_PATCH_CONTENT_TYPE, NODE_PATCH_PERMISSION } from "./node-patch.ts";
