// Public surface of the Kubernetes metadata source.
export { createKubeSource, type KubeSource, type KubeSourceOptions, type KubeSourceStatus, type KindStatus } from "./source.ts";
export { resolveMode, type KubeApiConfigLike, type KubeConnection, type KubeMode, type KubeTls, DEFAULT_META_SERVER } from "./modes.ts";
export { createKubeFetch, type KubeFetch, type TlsMaterial } from "./fetch-tls.ts";
export { DEFAULT_KINDS, type WatchedKind } from "./discovery.ts";
export { loadSnapshot, saveSnapshot, SnapshotError, SNAPSHOT_FILE, type MetadataSnapshot } from "./snapshot.ts";
export { KubeSourceError } from "./errors.ts";
