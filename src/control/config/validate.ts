// Turns a parsed config document into a complete, checked, frozen EdgeMeshAgentConfig:
// defaults (per running mode) <- the file, then checks that span several keys.

import { deepFreeze } from "../table.ts";
import { buildDefaults } from "./defaults.ts";
import type { Env } from "./defaults.ts";
import { ConfigError, showValue } from "./errors.ts";
import type { ConfigProblem } from "./errors.ts";
import { CONFIG_SCHEMA } from "./schema.ts";
import { AGENT_API_VERSION, AGENT_KIND, GATEWAY_API_VERSION, GATEWAY_KIND } from "./types.ts";
import type { EdgeMeshAgentConfig } from "./types.ts";
import { isMapping, walk } from "./walk.ts";

export interface ResolveOptions {
  /** Environment: running-mode detection (KUBERNETES_PORT), NODE_NAME, NAMESPACE. */
  env?: Env;
  /** Named in error messages. */
  file?: string;
  /** Told about accepted-but-ignored or re-cased keys; the caller usually logs a warning. */
  notice?: (message: string) => void;
}

const KIND_OF: Record<string, string> = { [AGENT_API_VERSION]: AGENT_KIND, [GATEWAY_API_VERSION]: GATEWAY_KIND };
const API_OF: Record<string, string> = { [AGENT_KIND]: AGENT_API_VERSION, [GATEWAY_KIND]: GATEWAY_API_VERSION };

/**
 * Merges `raw` (a parsed YAML/JSON document; null or undefined = empty file) onto the
 * defaults. Throws one ConfigError listing every problem; returns a deeply frozen config.
 */
export function resolveConfig(raw: unknown, options: ResolveOptions = {}): EdgeMeshAgentConfig {
  const problems: ConfigProblem[] = [];
  const config = buildDefaults(options.env ?? {});
  if (raw !== null && raw !== undefined && !isMapping(raw)) {
    problems.push({ path: "", message: `expected a mapping at the top of the file, got ${showValue(raw)}` });
  } else if (isMapping(raw) && raw.kind === "ConfigMap") {
    // A common slip: pointing the agent at the ConfigMap manifest instead of its content.
    problems.push({
      path: "kind",
      message: 'expected "EdgeMeshAgent", got "ConfigMap": give the agent the text of the ConfigMap\'s data["edgemesh-agent.yaml"]',
    });
  } else if (isMapping(raw)) {
    walk(raw, CONFIG_SCHEMA, config, "", { problems, notice: options.notice ?? (() => {}) });
    pairTypeMeta(raw, config, problems);
    crossChecks(config, problems);
  }
  if (problems.length > 0) throw new ConfigError(problems, options.file);
  return deepFreeze(config);
}

/** apiVersion and kind default to each other; a file naming both must name a matching pair. */
function pairTypeMeta(raw: Record<string, unknown>, config: EdgeMeshAgentConfig, problems: ConfigProblem[]): void {
  const api = typeof raw.apiVersion === "string" ? KIND_OF[raw.apiVersion] && raw.apiVersion : undefined;
  const kind = typeof raw.kind === "string" ? API_OF[raw.kind] && raw.kind : undefined;
  if (kind && raw.apiVersion == null) config.apiVersion = API_OF[kind] as EdgeMeshAgentConfig["apiVersion"];
  if (api && raw.kind == null) config.kind = KIND_OF[api] as EdgeMeshAgentConfig["kind"];
  if (api && kind && KIND_OF[api] !== kind) {
    problems.push({ path: "kind", message: `expected "${KIND_OF[api]}" with apiVersion "${api}", got "${kind}"` });
  }
}

function crossChecks(config: EdgeMeshAgentConfig, problems: ConfigProblem[]): void {
  const reported = (path: string) => problems.some((p) => p.path === path || p.path.startsWith(`${path}.`));
  const tunnel = config.modules.edgeTunnel;
  if (tunnel.psk.enable && tunnel.psk.path.trim() === "" && !reported("modules.edgeTunnel.psk.path")) {
    problems.push({ path: "modules.edgeTunnel.psk.path", message: 'required when psk.enable is true, got ""' });
  }
  // libp2p has no connection protector for QUIC: a private network runs over TCP only.
  if (tunnel.enable && tunnel.psk.enable && tunnel.transport === "quic" && !reported("modules.edgeTunnel.transport")) {
    problems.push({ path: "modules.edgeTunnel.transport", message: '"quic" cannot carry a PSK private network: use "tcp" or set psk.enable false' });
  }
  const cni = config.modules.edgeCNI;
  if (cni.enable && !tunnel.enable && !reported("modules.edgeCNI.enable")) {
    problems.push({ path: "modules.edgeCNI.enable", message: "needs modules.edgeTunnel.enable true: pod packets travel through the tunnel" });
  }
  const names = new Map<string, number>();
  tunnel.relayNodes.forEach((relay, i) => {
    const path = `modules.edgeTunnel.relayNodes[${i}].nodeName`;
    if (relay.nodeName === "" && !reported(path)) problems.push({ path, message: "required, got nothing" });
    const first = names.get(relay.nodeName);
    if (relay.nodeName !== "" && first !== undefined) {
      problems.push({ path, message: `node ${JSON.stringify(relay.nodeName)} is already listed at relayNodes[${first}]` });
    }
    if (first === undefined) names.set(relay.nodeName, i);
  });
}
