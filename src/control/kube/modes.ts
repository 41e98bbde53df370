// How the agent reaches the Kubernetes API, decided as EdgeMesh decides it (edgemesh
// pkg/apis/config/v1alpha1 DetectRunningMode + cmd prepareRun + util.GenerateKubeClientConfig):
// - Manual: kubeAPIConfig.master or kubeAPIConfig.kubeConfig is set; master overrides the server
//   of the kubeconfig (client-go BuildConfigFromFlags).
// - Otherwise kubeAPIConfig.mode decides when given (EdgeMesh fills it from DetectRunningMode
//   and lets the config file override it), else the environment does:
// - Cloud: the KUBERNETES_PORT variable exists (kubelet injects it, KubeEdge's edged does not):
//   in-cluster service account (KUBERNETES_SERVICE_HOST/PORT, token and CA under
//   /var/run/secrets/kubernetes.io/serviceaccount).
// - Edge: KubeEdge's MetaServer, metaServer.server (default http://127.0.0.1:10550), JSON only
//   (kubeedge/kubeedge#3041). With metaServer.security.requireAuthorization the scheme becomes
//   https and the service-account token is sent; then either insecureSkipTLSVerify, or the CA plus
//   a client certificate and key from the tls*File settings.

export type KubeMode = "manual" | "cloud" | "edge";

/** The part of EdgeMesh's kubeAPIConfig this module reads (the config module maps it). */
export interface KubeApiConfigLike {
  /** EdgeMesh's RunningMode: "EdgeMode" | "CloudMode" | "ManualMode". */
  mode?: string;
  master?: string;
  kubeConfig?: string;
  contentType?: string;
  metaServer?: {
    server?: string;
    security?: {
      requireAuthorization?: boolean;
      insecureSkipTLSVerify?: boolean;
      tlsCaFile?: string;
      tlsCertFile?: string;
      tlsPrivateKeyFile?: string;
    };
  };
}

export interface KubeTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** PEM text, used instead of the files when given (tests, kubeconfig *-data). */
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipVerify?: boolean;
  serverName?: string;
}

export interface KubeConnection {
  mode: KubeMode;
  /** API base URL; for Manual with only a kubeconfig, taken from the kubeconfig. */
  server?: string;
  kubeConfigPath?: string;
  tls?: KubeTls;
  /** Bearer token file, re-read periodically (service-account tokens rotate). */
  tokenFile?: string;
  /** What the config asked for; the source always speaks JSON (see source.ts). */
  contentType: string;
  /** One line for the start-up log: why this mode. */
  reason: string;
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
export const DEFAULT_META_SERVER = "http://127.0.0.1:10550";
export const META_SERVER_CERT_DIR = "/etc/edgemesh/metaserver/";
export const CONTENT_TYPE_JSON = "application/json";

export function resolveMode(config: KubeApiConfigLike, env: Record<string, string | undefined> = process.env): KubeConnection {
  const contentType = config.contentType || "application/vnd.kubernetes.protobuf";
  if (config.master || config.kubeConfig) {
    return {
      mode: "manual",
      server: config.master || undefined,
      kubeConfigPath: config.kubeConfig || undefined,
      contentType,
      reason: config.kubeConfig ? `kubeAPIConfig.kubeConfig=${config.kubeConfig}` : `kubeAPIConfig.master=${config.master}`,
    };
  }
  // "ManualMode" without master/kubeConfig leaves client-go with in-cluster settings: cloud.
  const cloud = config.mode ? config.mode !== "EdgeMode" : env.KUBERNETES_PORT !== undefined;
  if (cloud) {
    const host = env.KUBERNETES_SERVICE_HOST ?? "";
    const port = env.KUBERNETES_SERVICE_PORT ?? "443";
    const hostPart = host.includes(":") ? `[${host}]` : host;
    return {
      mode: "cloud",
      server: host ? `https://${hostPart}:${port}` : undefined,
      tls: { caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt` },
      tokenFile: `${SERVICE_ACCOUNT_DIR}/token`,
      contentType,
      reason: config.mode ? `kubeAPIConfig.mode=${config.mode}: in-cluster service account` : "KUBERNETES_PORT is set (kubelet-managed pod): in-cluster service account",
    };
  }
  const meta = config.metaServer ?? {};
  const security = meta.security ?? {};
  let server = meta.server || DEFAULT_META_SERVER;
  const edge: KubeConnection = {
    mode: "edge",
    server,
    contentType: CONTENT_TYPE_JSON,
    reason: config.mode ? `kubeAPIConfig.mode=${config.mode}: KubeEdge MetaServer` : "no KUBERNETES_PORT (edged-managed pod): KubeEdge MetaServer",
  };
  if (security.requireAuthorization) {
    server = server.replace(/^http:\/\//, "https://");
    edge.server = server;
    edge.tokenFile = `${SERVICE_ACCOUNT_DIR}/token`;
    edge.tls = security.insecureSkipTLSVerify
      ? { insecureSkipVerify: true }
      : {
          caFile: security.tlsCaFile || `${META_SERVER_CERT_DIR}rootCA.crt`,
          certFile: security.tlsCertFile || `${META_SERVER_CERT_DIR}server.crt`,
          keyFile: security.tlsPrivateKeyFile || `${META_SERVER_CERT_DIR}server.key`,
        };
    edge.reason += " with authorization (https)";
  }
  return edge;
}
