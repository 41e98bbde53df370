// How `edgemesh gateway` reads its config file, without starting anything: its tunnel identity,
// its admin address beside the agent's, and what it refuses. Shared by the gateway's start and
// by `edgemesh validate` (which must not load the data plane to check a file).

import { GATEWAY_KIND, type EdgeMeshAgentConfig } from "../control/index.ts";

/** EdgeMesh's suffix: the gateway's tunnel identity is derived from "<node>-gateway". */
export const GATEWAY_IDENTITY_SUFFIX = "-gateway";
/**
 * Where `edgemesh gateway` in secure mode publishes its peer ID: on the Node it runs on (there is
 * no Node "<node>-gateway"), beside the agent's peer-id, so both run on one node as EdgeMesh
 * deploys them. Agents admit it under the tunnel name "<node>-gateway" (peer-watch.ts).
 */
export const GATEWAY_PEER_ID_ANNOTATION = "edgemesh.kubeedge.io/gateway-peer-id";
/** The agent's admin default; the gateway moves to the next port so both fit on one node. */
export const AGENT_ADMIN_DEFAULT = "127.0.0.1:10551";
export const GATEWAY_ADMIN_DEFAULT = "127.0.0.1:10552";

/** The config as the gateway runs it: its tunnel identity and an admin address beside the agent's. */
export function gatewayView(config: EdgeMeshAgentConfig): { tunnelConfig: EdgeMeshAgentConfig; adminAddress: string } {
  const tunnelConfig = { ...config, nodeName: config.nodeName + GATEWAY_IDENTITY_SUFFIX };
  const adminAddress = config.commonConfig.adminAddress === AGENT_ADMIN_DEFAULT ? GATEWAY_ADMIN_DEFAULT : config.commonConfig.adminAddress;
  return { tunnelConfig, adminAddress };
}

/**
 * Keys the gateway refuses to start with (the agent accepts them), each naming the key. None
 * today: secure identity mode works (the gateway publishes its peer ID on its Node under its own
 * annotation, which agents admit); kept so start and validate share one list.
 */
export function gatewayRefusals(_config: EdgeMeshAgentConfig): string[] {
  return [];
}

/** Modules of the shared schema that only the agent runs; the gateway ignores them. */
export const AGENT_ONLY_MODULES = ["edgeDNS", "edgeProxy", "edgeCNI"] as const;

/** A file is a gateway's when its kind says so (EdgeMesh's edgemesh-gateway.yaml may have no kind). */
export function isGatewayKind(config: EdgeMeshAgentConfig): boolean {
  return config.kind === GATEWAY_KIND;
}
