// `edgemesh validate --config FILE`: load and check FILE exactly as `edgemesh agent` would, then
// print the effective config (every default filled in) so an operator sees what the agent will
// do before a rollout. No root, nothing created, nothing written: it only reads FILE and looks
// whether the files FILE names exist here. The printed YAML is itself a valid config file that
// loads to the same effective config (NODE_NAME and NAMESPACE, which come from the environment,
// are shown as comments).

import { accessSync, constants } from "node:fs";
import { dump } from "js-yaml";
import { ConfigError, loadConfig, type EdgeMeshAgentConfig } from "../control/index.ts";
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
  warnings.push(...unbuiltWarnings(config), ...missingFiles(config, options.readable ?? canRead));
  if (config.nodeName === "") warnings.push("NODE_NAME is not set here: `edgemesh agent` refuses to start without it (the DaemonSet sets it from spec.nodeName)");
  for (const w of warnings) err(`warning: ${w}\n`);

  const { nodeName, namespace, ...file } = config;
  if (options.json) {
    out(JSON.stringify(file, null, 2) + "\n");
    return 0;
  }
  const mode = config.kubeAPIConfig.mode;
  const why = env.KUBERNETES_PORT !== undefined ? "KUBERNETES_PORT is set: a kubelet-managed (cloud) node" : "no KUBERNETES_PORT: an edged-managed (edge) node";
  out(
    `# effective config of ${path}\n` +
      `# running mode ${mode} (${why}); NODE_NAME=${nodeName || "(unset)"} NAMESPACE=${namespace || "(unset)"}\n` +
      dump(file, { lineWidth: -1, noRefs: true }),
  );
  return 0;
}

function canRead(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

/** Files the config names that the agent reads at start; missing here is fine if the pod mounts them. */
function missingFiles(c: EdgeMeshAgentConfig, readable: (path: string) => string | undefined): string[] {
  const files: [string, string][] = [];
  const t = c.modules.edgeTunnel;
  if (t.enable && t.psk.enable) files.push(["modules.edgeTunnel.psk.path", t.psk.path]);
  if (c.kubeAPIConfig.kubeConfig) files.push(["kubeAPIConfig.kubeConfig", c.kubeAPIConfig.kubeConfig]);
  if (c.kubeAPIConfig.manifestDir) files.push(["kubeAPIConfig.manifestDir", c.kubeAPIConfig.manifestDir]);
  const problems: string[] = [];
  for (const [key, file] of files) {
    const why = readable(file);
    if (why) problems.push(`${key}: ${file} cannot be read here (${why}); the agent reads it at start, so it must exist where the agent runs`);
  }
  return problems;
}
