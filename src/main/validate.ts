// `edgemesh validate --config FILE`: load and check FILE exactly as `edgemesh agent` would (or,
// for an EdgeMeshGateway file, as `edgemesh gateway` would), then print the effective config
// (every default filled in) so an operator sees what will run before a rollout. No root, nothing created, nothing written: it only reads FILE and looks
// whether the files FILE names exist here. The printed YAML is itself a valid config file that
// loads to the same effective config (NODE_NAME and NAMESPACE, which come from the environment,
// are shown as comments).

import { accessSync, constants, readFileSync } from "node:fs";
import { dump } from "js-yaml";
import { ConfigError, GATEWAY_API_VERSION, GATEWAY_KIND, loadConfig, parseDocument, type EdgeMeshAgentConfig } from "../control/index.ts";
import { GATEWAY_PEER_ID_ANNOTATION, gatewayRefusals, gatewayView } from "./gateway-config.ts";
import { unbuiltWarnings } from "./unbuilt.ts";

export interface ValidateIo {
  env?: Readonly<Record<string, string | undefined>>;
  out?: (text: string) => void;
  err?: (text: string) => void;
  /** Whether a file can be read here; injectable for tests. */
  readable?: (path: string) => string | undefined;
}

export function runValidate(path: string, options: { json?: boolean } & ValidateIo = {}): number {
  const env = options.env ?? process.env;
  const out = options.out ?? ((t: string) => process.stdout.write(t));
  const err = options.err ?? ((t: string) => process.stderr.write(t));
  const warnings: string[] = [];
  let config: EdgeMeshAgentConfig;
  try {
    config = loadConfig({ path, env, notice: (m) => warnings.push(m) });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    err(`edgemesh validate: ${e.message}\n`);
    return 1;
  }
  const gateway = isGatewayFile(config, path);
  if (gateway) {
    const refusals = gatewayRefusals(config);
    if (refusals.length > 0) {
      for (const r of refusals) err(`edgemesh validate: ${path}: ${r}\n`);
      return 1;
    }
    warnings.push(...gatewayWarnings(config));
  } else {
    warnings.push(...unbuiltWarnings(config));
  }
  warnings.push(...missingFiles(config, options.readable ?? canRead, gateway ? "gateway" : "agent"));
  if (config.nodeName === "") {
    warnings.push(gateway
      ? "NODE_NAME is not set here: `edgemesh gateway` refuses to start without it (the Deployment sets it from spec.nodeName)"
      : "NODE_NAME is not set here: `edgemesh agent` refuses to start without it (the DaemonSet sets it from spec.nodeName)");
  }
  for (const w of warnings) err(`warning: ${w}\n`);

  const { nodeName, namespace, ...rest } = config;
  // The gateway's view: its kind, and the admin address it really listens on (the agent's
  // default moves one port up); the printed file loads back to a config the gateway runs the same.
  const view = gateway ? gatewayView(config) : undefined;
  const file = view
    ? { ...rest, apiVersion: GATEWAY_API_VERSION, kind: GATEWAY_KIND, commonConfig: { ...rest.commonConfig, adminAddress: view.adminAddress } }
    : rest;
  if (options.json) {
    out(JSON.stringify(file, null, 2) + "\n");
    return 0;
  }
  const mode = config.kubeAPIConfig.mode;
  const why = env.KUBERNETES_PORT !== undefined ? "KUBERNETES_PORT is set: a kubelet-managed (cloud) node" : "no KUBERNETES_PORT: an edged-managed (edge) node";
  const gw = config.modules.edgeGateway;
  const gatewayLines = view
    ? `# as \`edgemesh gateway\` runs it: tunnel identity ${config.modules.edgeTunnel.enable ? view.tunnelConfig.nodeName || "(NODE_NAME unset)-gateway" : "off (edgeTunnel.enable false: local endpoints only)"}, admin ${view.adminAddress}, ` +
      `listeners ${gw.enable ? `on the IPv4 addresses of nic ${JSON.stringify(gw.nic)} (includeIP ${JSON.stringify(gw.includeIP)}, excludeIP ${JSON.stringify(gw.excludeIP)}), one per Gateway server port` : "none (edgeGateway.enable false)"}\n` +
      (config.modules.edgeTunnel.enable && config.modules.edgeTunnel.identityMode === "secure"
        ? `# identityMode secure: the gateway's key is kept in ${config.commonConfig.stateDir} and its peer ID published on Node ${nodeName || "(NODE_NAME unset)"} as ${GATEWAY_PEER_ID_ANNOTATION} (agents admit it as <node>-gateway; the role needs patch nodes: deploy/components/gateway-secure-identity)\n`
        : "") +
      "# modules.edgeDNS, edgeProxy and edgeCNI are the agent's: of them the gateway reads edgeDNS.clusterDomain (destination host names) and edgeProxy.serviceFilterMode (which Services route)\n"
    : "";
  out(
    `# effective config of ${path}${view ? " (EdgeMeshGateway: for `edgemesh gateway`)" : ""}\n` +
      `# running mode ${mode} (${why}); NODE_NAME=${nodeName || "(unset)"} NAMESPACE=${namespace || "(unset)"}\n` +
      gatewayLines +
      dump(file, { lineWidth: -1, noRefs: true }),
  );
  return 0;
}

/**
 * A gateway's file: kind EdgeMeshGateway, or (EdgeMesh's edgemesh-gateway ConfigMap carries no
 * apiVersion/kind) a file without a kind that configures modules.edgeGateway.
 */
function isGatewayFile(config: EdgeMeshAgentConfig, path: string): boolean {
  if (config.kind === GATEWAY_KIND) return true;
  let raw: unknown;
  try {
    raw = parseDocument(readFileSync(path, "utf8"), path);
  } catch {
    return false;
  }
  const r = raw as { kind?: unknown; modules?: { edgeGateway?: unknown } } | null;
  return r !== null && typeof r === "object" && r.kind === undefined && r.modules?.edgeGateway !== undefined;
}

/** What the gateway warns about at start, plus keys of the agent's modules it will not run. */
function gatewayWarnings(c: EdgeMeshAgentConfig): string[] {
  const w = unbuiltWarnings(c).filter((m) => !m.startsWith("modules.edgeGateway.enable"));
  if (!c.modules.edgeGateway.enable) w.push("modules.edgeGateway.enable is false: no gateway listeners (as EdgeMesh, only the tunnel runs); set it to true");
  if (c.modules.edgeProxy.socks5Proxy.enable) w.push("modules.edgeProxy.socks5Proxy.enable is ignored by the gateway: SOCKS5 is the agent's (edgemesh-agent.yaml)");
  if (c.modules.edgeCNI.enable) w.push("modules.edgeCNI.enable is ignored by the gateway: the Edge CNI is the agent's (edgemesh-agent.yaml)");
  return w;
}

function canRead(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

/** Files the config names that the agent (or gateway) reads at start; missing here is fine if the pod mounts them. */
function missingFiles(c: EdgeMeshAgentConfig, readable: (path: string) => string | undefined, who: "agent" | "gateway"): string[] {
  const files: [string, string][] = [];
  const t = c.modules.edgeTunnel;
  if (t.enable && t.psk.enable) files.push(["modules.edgeTunnel.psk.path", t.psk.path]);
  if (c.kubeAPIConfig.kubeConfig) files.push(["kubeAPIConfig.kubeConfig", c.kubeAPIConfig.kubeConfig]);
  if (c.kubeAPIConfig.manifestDir) files.push(["kubeAPIConfig.manifestDir", c.kubeAPIConfig.manifestDir]);
  const problems: string[] = [];
  for (const [key, file] of files) {
    const why = readable(file);
    if (why) problems.push(`${key}: ${file} cannot be read here (${why}); the ${who} reads it at start, so it must exist where the ${who} runs`);
  }
  return problems;
}
