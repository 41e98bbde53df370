// EdgeMesh v1.17 defaults (pkg/apis/config/v1alpha1/default.go, defaults/default.go), plus ours.
// Like EdgeMesh's NewDefaultEdgeMeshAgentConfig, some defaults depend on where the agent runs:
// detectRunningMode() looks at the environment and preConfig adjusts contentType and edgeDNS.

import { deepFreeze } from "../table.ts";
import { AGENT_API_VERSION, AGENT_KIND } from "./types.ts";
import type { EdgeMeshAgentConfig, LoadBalancerConfig, RunningMode } from "./types.ts";

export type Env = Readonly<Record<string, string | undefined>>;

export const CONTENT_TYPE_JSON = "application/json";
export const CONTENT_TYPE_PROTOBUF = "application/vnd.kubernetes.protobuf";
export const DEFAULT_CONFIG_PATH = "/etc/edgemesh/config/edgemesh-agent.yaml";

/**
 * EdgeMesh's DetectRunningMode: kubelet injects KUBERNETES_PORT into pods, KubeEdge's edged
 * does not, so its presence means the agent runs on a cloud node.
 */
export function detectRunningMode(env: Env): RunningMode {
  return env.KUBERNETES_PORT !== undefined ? "CloudMode" : "EdgeMode";
}

function loadBalancer(): LoadBalancerConfig {
  return { consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 } };
}

/**
 * A complete config holding every default, as EdgeMesh builds it before reading the file.
 * `env` decides the running mode (see detectRunningMode) and supplies NODE_NAME/NAMESPACE;
 * with no env it is treated as empty, which EdgeMesh reads as EdgeMode.
 */
export function defaultConfig(env: Env = {}): EdgeMeshAgentConfig {
  return deepFreeze(buildDefaults(env));
}

/** Same as defaultConfig() but mutable; the loader merges the file into it. */
export function buildDefaults(env: Env): EdgeMeshAgentConfig {
  const mode = detectRunningMode(env);
  const edge = mode === "EdgeMode";
  return {
    apiVersion: AGENT_API_VERSION,
    kind: AGENT_KIND,
    nodeName: env.NODE_NAME ?? "",
    namespace: env.NAMESPACE ?? "",
    kubeAPIConfig: {
      master: "",
      // EdgeMode: KubeEdge's MetaServer only speaks JSON (kubeedge/kubeedge#3041).
      contentType: edge ? CONTENT_TYPE_JSON : CONTENT_TYPE_PROTOBUF,
      qps: 100,
      burst: 200,
      kubeConfig: "",
      mode,
      metaServer: {
        server: "http://127.0.0.1:10550",
        security: {
          requireAuthorization: false,
          insecureSkipTLSVerify: false,
          tlsCaFile: "/etc/edgemesh/metaserver/rootCA.crt",
          tlsCertFile: "/etc/edgemesh/metaserver/server.crt",
          tlsPrivateKeyFile: "/etc/edgemesh/metaserver/server.key",
        },
      },
      deleteKubeConfig: false,
      manifestDir: "",
    },
    commonConfig: {
      bridgeDeviceName: "edgemesh0",
      bridgeDeviceIP: "169.254.96.16",
      // EdgeMesh sets no defaults here; Go's zero values.
      pprofConfig: { enableProfiling: false, profilingAddress: "", profilingPort: 0 },
      adminAddress: "127.0.0.1:10551",
      stateDir: "/var/lib/edgemesh",
      logLevel: "info",
      logFormat: "text",
    },
    modules: {
      edgeDNS: {
        // On the edge EdgeDNS replaces CoreDNS; in the cloud CoreDNS already answers.
        enable: edge,
        listenPort: 53,
        cacheDNS: { enable: false, autoDetect: true, upstreamServers: [], cacheTTL: 30 },
        clusterDomain: "cluster.local",
        ttl: 30,
        upstreamResolvers: [],
        cacheSize: 10_000,
      },
      edgeProxy: {
        enable: false,
        socks5Proxy: { enable: false, listenPort: 10800 },
        loadBalancer: loadBalancer(),
        serviceFilterMode: "FilterIfLabelExists",
        maxConnections: 0,
        maxConnectionsPerPort: 0,
        udpIdleTimeoutSeconds: 30,
      },
      edgeTunnel: {
        enable: false,
        listenPort: 20006,
        transport: "tcp",
        rendezvous: "EDGEMESH_PLAYGOUND", // sic: EdgeMesh's spelling, peers must match it
        relayNodes: [],
        enableIpfsLog: false,
        // EdgeMesh's code default; its doc comment and docs say 5, the code says 15.
        maxCandidates: 15,
        heartbeatPeriod: 120,
        finderPeriod: 60,
        psk: { enable: true, path: "/etc/edgemesh/psk" },
        tunnelLimitConfig: {
          enable: true,
          tunnelBaseStreamIn: 10240,
          tunnelBaseStreamOut: 10240,
          tunnelPeerBaseStreamIn: 1024,
          tunnelPeerBaseStreamOut: 1024,
        },
        listenInterfaces: "*",
        extraFilteredInterfaces: "",
        metricConfig: { enable: false, port: 9999, bindAddress: "0.0.0.0" },
        identityMode: "compat",
        wireFormat: "extended",
      },
      edgeGateway: {
        enable: false,
        nic: "*",
        includeIP: "*",
        excludeIP: "*",
        loadBalancer: loadBalancer(),
      },
      edgeCNI: {
        enable: false,
        encapIP: "",
        tunMode: 0,
        meshCIDRConfig: { cloudCIDR: [], edgeCIDR: [] },
      },
    },
  };
}
