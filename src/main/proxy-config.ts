// The proxy options modules.edgeProxy sets, the same for `edgemesh agent` and `edgemesh dev`
// (each adds where it listens, its connection budget and its tunnel).
import type { EdgeMeshAgentConfig } from "../control/index.ts";

export function edgeProxyOptions(config: EdgeMeshAgentConfig) {
  const p = config.modules.edgeProxy;
  return {
    maxConnectionsPerPort: p.maxConnectionsPerPort,
    udpIdleTimeoutMs: p.udpIdleTimeoutSeconds * 1000,
    consistentHash: p.loadBalancer.consistentHash,
  };
}
