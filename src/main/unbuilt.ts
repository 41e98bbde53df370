// Keys of EdgeMesh's schema that edgemesh-bun accepts (so an existing edgemesh-agent.yaml loads)
// but does not act on. Compatible does not mean silent: a key set to ask for something we do not
// do warns at start (and in `edgemesh validate`), naming the key and what happens instead.
// When a feature is built, its entry goes.

import { defaultConfig, type EdgeMeshAgentConfig } from "../control/index.ts";

export interface UnbuiltKey {
  /** Dotted path as in the config file. */
  readonly key: string;
  /** True when the config asks for the feature (an enable switch on, a tunable changed). */
  readonly asks: (config: EdgeMeshAgentConfig, defaults: EdgeMeshAgentConfig) => boolean;
  /** What happens instead. */
  readonly instead: string;
}

export const UNBUILT: readonly UnbuiltKey[] = [
  {
    key: "commonConfig.pprofConfig.enableProfiling",
    asks: (c) => c.commonConfig.pprofConfig.enableProfiling,
    instead: "no Go profiler here; /metrics on the admin address has the process figures",
  },
  {
    key: "kubeAPIConfig.qps",
    asks: (c, d) => c.kubeAPIConfig.qps !== d.kubeAPIConfig.qps,
    instead: "requests to the API are not rate-limited on the client (the agent lists once, then watches)",
  },
  {
    key: "kubeAPIConfig.burst",
    asks: (c, d) => c.kubeAPIConfig.burst !== d.kubeAPIConfig.burst,
    instead: "requests to the API are not rate-limited on the client (the agent lists once, then watches)",
  },
  {
    key: "kubeAPIConfig.deleteKubeConfig",
    asks: (c) => c.kubeAPIConfig.deleteKubeConfig,
    instead: "the kubeconfig file is left in place",
  },
  {
    key: "modules.edgeTunnel.enableIpfsLog",
    asks: (c) => c.modules.edgeTunnel.enableIpfsLog,
    instead: "libp2p's own log stays off; the tunnel logs through the agent's logger",
  },
  {
    key: "modules.edgeTunnel.maxCandidates",
    asks: (c, d) => c.modules.edgeTunnel.maxCandidates !== d.modules.edgeTunnel.maxCandidates,
    instead: "peers are found by mDNS, relays and published addresses, without a candidate limit",
  },
  {
    key: "modules.edgeTunnel.heartbeatPeriod",
    asks: (c, d) => c.modules.edgeTunnel.heartbeatPeriod !== d.modules.edgeTunnel.heartbeatPeriod,
    instead: "relay reservations and connections are kept by libp2p's own timers",
  },
  {
    key: "modules.edgeTunnel.finderPeriod",
    asks: (c, d) => c.modules.edgeTunnel.finderPeriod !== d.modules.edgeTunnel.finderPeriod,
    instead: "peers are found by mDNS, relays and published addresses on their own schedule",
  },
  {
    key: "modules.edgeGateway.enable",
    asks: (c) => c.modules.edgeGateway.enable,
    instead: "the agent does not run the gateway: run `edgemesh gateway --config FILE` (the edgemesh-gateway Deployment) with it",
  },
];

/** One warning per key the config sets to something edgemesh-bun does not do. */
export function unbuiltWarnings(config: EdgeMeshAgentConfig, table: readonly UnbuiltKey[] = UNBUILT): string[] {
  // The defaults for the same running mode, so mode-dependent defaults never read as "changed".
  const defaults = defaultConfig({ KUBERNETES_PORT: config.kubeAPIConfig.mode === "CloudMode" ? "set" : undefined });
  return table.filter((u) => u.asks(config, defaults)).map((u) => `${u.key}: accepted for EdgeMesh compatibility but not built in edgemesh-bun; ${u.instead}`);
}
