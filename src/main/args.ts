// Command-line parsing for the one entry point. Tiny on purpose: a few subcommands, a handful of
// flags, help per subcommand, and an error that names the flag. EdgeMesh's agent takes its file
// as --config-file; that spelling is accepted everywhere --config is.

import { isIP } from "node:net";
import { FORMATS, isFormat, isLevel, LEVELS, type Format, type Level } from "../log/index.ts";

/** --log-level / --log-format; absent flags leave the environment or config file in charge. */
export interface LogFlags {
  logLevel?: Level;
  logFormat?: Format;
}

/**
 * --metrics-bind-address / --metrics-port: the metrics listener on, over
 * modules.edgeTunnel.metricConfig. A DaemonSet can only learn the node's address at run time
 * (the downward API's status.hostIP, expanded into args), which a ConfigMap file cannot hold.
 */
export interface MetricsFlags {
  metricsBindAddress?: string;
  metricsPort?: number;
}

export type Command =
  | ({ cmd: "agent"; config: string } & LogFlags & MetricsFlags)
  | ({ cmd: "gateway"; config: string } & LogFlags & MetricsFlags)
  | ({ cmd: "dev"; manifests?: string; admin: string; dns: string; config?: string } & LogFlags)
  | { cmd: "status"; admin: string; json: boolean }
  | { cmd: "validate"; config: string; json: boolean }
  | { cmd: "version" }
  | { cmd: "help"; topic?: Subcommand };

export type Subcommand = "agent" | "dev" | "gateway" | "status" | "validate";

const DEFAULT_ADMIN = "127.0.0.1:10551";

/** One paragraph per subcommand; `edgemesh CMD --help` prints it, `edgemesh --help` all of them. */
export const COMMAND_HELP: Readonly<Record<Subcommand, string>> = {
  agent: `edgemesh agent --config FILE [--metrics-bind-address IP] [--metrics-port PORT]
    Run the node agent (the DaemonSet): cluster DNS, the service proxy, the tunnel.
    Needs root (or NET_ADMIN, NET_RAW and NET_BIND_SERVICE) and NODE_NAME in the environment.
    FILE is EdgeMesh's edgemesh-agent.yaml; check it first with \`edgemesh validate\`.
    Either metrics flag turns the metrics listener on (read-only routes), over
    modules.edgeTunnel.metricConfig {enable, bindAddress, port}; the other comes from there.`,
  dev: `edgemesh dev [--manifests DIR] [--admin HOST:PORT] [--dns HOST:PORT] [--config FILE]
    Single-node dev mode on loopback: no root, no cluster. DIR holds Services, EndpointSlices,
    Endpoints and DestinationRules (default: the bundled examples). Port 0 picks a free port
    and prints it. Defaults: --admin ${DEFAULT_ADMIN}, --dns 127.0.0.1:5353.`,
  gateway: `edgemesh gateway --config FILE [--metrics-bind-address IP] [--metrics-port PORT]
    Run the edge gateway only (the metrics flags as for agent).`,
  status: `edgemesh status [--admin HOST:PORT] [--json]
    Print the routes of a running agent (default --admin ${DEFAULT_ADMIN}).`,
  validate: `edgemesh validate --config FILE [--json]
    Load and check FILE as the agent would (as the gateway would for kind EdgeMeshGateway, or a
    file without a kind that sets modules.edgeGateway), then print the effective config (defaults filled in,
    as YAML or JSON) and warnings to stderr. No root, no side effects. Exit 0 when the agent
    would accept the file, 1 when it would refuse it. The effective config depends on where the
    agent runs: with KUBERNETES_PORT set (a kubelet-managed cloud node) DNS defaults to off.`,
};

export const USAGE = `usage: edgemesh COMMAND [FLAGS]

${Object.values(COMMAND_HELP).join("\n\n")}

edgemesh --version        print the version
edgemesh COMMAND --help   help for one command

--config-file FILE is accepted wherever --config FILE is (EdgeMesh's spelling).
agent, dev and gateway take --log-level debug|info|warn|error and --log-format text|json
(over EDGEMESH_LOG_LEVEL/EDGEMESH_LOG_FORMAT and commonConfig.logLevel/logFormat).`;

export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    /** The subcommand whose help should follow the message, if known. */
    readonly topic?: Subcommand,
  ) {
    super(message);
  }
}

const BOOLEAN_FLAGS = new Set(["json"]);
/** EdgeMesh spellings -> ours. */
const ALIASES: Readonly<Record<string, string>> = { "config-file": "config" };

function isSubcommand(s: string | undefined): s is Subcommand {
  return s !== undefined && Object.hasOwn(COMMAND_HELP, s);
}

export function parseArgs(argv: readonly string[]): Command {
  // Top-level flags come before any subcommand: `edgemesh --version`, `edgemesh -h`.
  const [first, ...after] = argv;
  if (first === "--version" || first === "-v" || first === "version") return { cmd: "version" };
  if (first === undefined || first === "--help" || first === "-h") return { cmd: "help" };
  if (first === "help") {
    const topic = after[0];
    if (topic !== undefined && !isSubcommand(topic)) throw new UsageError(`no help for unknown command ${JSON.stringify(topic)}`);
    return { cmd: "help", topic };
  }
  if (!isSubcommand(first)) {
    throw new UsageError(first.startsWith("-") ? `unknown flag ${first} (flags follow the command)` : `unknown command ${JSON.stringify(first)}`);
  }
  const cmd = first;
  // Help and version win wherever they stand, even after a flag missing its value.
  if (after.includes("--help") || after.includes("-h")) return { cmd: "help", topic: cmd };
  if (after.includes("--version")) return { cmd: "version" };
  const flags = readFlags(cmd, after);

  const allow = (...names: string[]) => {
    for (const name of flags.keys()) {
      if (!names.includes(name)) throw new UsageError(`unknown flag --${name} for "${cmd}"`, cmd);
    }
  };
  const str = (name: string) => {
    const v = flags.get(name);
    return typeof v === "string" ? v : undefined;
  };
  const required = (name: string, what: string) => {
    const v = str(name);
    if (!v) throw new UsageError(`${cmd} needs --${name} ${what}`, cmd);
    return v;
  };
  const logFlags = (): LogFlags => {
    const level = str("log-level");
    const format = str("log-format");
    if (level !== undefined && !isLevel(level)) throw new UsageError(`--log-level: expected one of ${LEVELS.join(", ")}, got ${JSON.stringify(level)}`, cmd);
    if (format !== undefined && !isFormat(format)) throw new UsageError(`--log-format: expected one of ${FORMATS.join(", ")}, got ${JSON.stringify(format)}`, cmd);
    return { logLevel: level, logFormat: format };
  };
  const metricsFlags = (): MetricsFlags => {
    const out: MetricsFlags = {};
    const address = str("metrics-bind-address");
    if (address !== undefined) {
      if (isIP(address) === 0) throw new UsageError(`--metrics-bind-address: expected an IP address, got ${JSON.stringify(address)}`, cmd);
      out.metricsBindAddress = address;
    }
    const port = str("metrics-port");
    if (port !== undefined) {
      if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new UsageError(`--metrics-port: expected a port 0-65535, got ${JSON.stringify(port)}`, cmd);
      out.metricsPort = Number(port);
    }
    return out;
  };
  switch (cmd) {
    case "agent":
    case "gateway":
      allow("config", "log-level", "log-format", "metrics-bind-address", "metrics-port");
      return { cmd, config: required("config", "FILE"), ...logFlags(), ...metricsFlags() };
    case "validate":
      allow("config", "json");
      return { cmd, config: required("config", "FILE"), json: flags.has("json") };
    case "dev":
      allow("manifests", "admin", "dns", "config", "log-level", "log-format");
      return {
        cmd,
        manifests: str("manifests"),
        admin: str("admin") ?? DEFAULT_ADMIN,
        dns: str("dns") ?? "127.0.0.1:5353",
        config: str("config"),
        ...logFlags(),
      };
    case "status":
      allow("admin", "json");
      return { cmd, admin: str("admin") ?? DEFAULT_ADMIN, json: flags.has("json") };
  }
}

function readFlags(cmd: Subcommand, rest: readonly string[]): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`, cmd);
    const eq = arg.indexOf("=");
    let name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    name = ALIASES[name] ?? name;
    if (eq > 0) {
      flags.set(name, arg.slice(eq + 1));
    } else if (BOOLEAN_FLAGS.has(name)) {
      flags.set(name, true);
    } else {
      const value = rest[++i];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`${arg} needs a value`, cmd);
      flags.set(name, value);
    }
  }
  return flags;
}

/** modules.edgeTunnel.metricConfig with the metrics flags over it (either flag turns it on). */
export function effectiveMetricConfig(mc: { enable: boolean; bindAddress: string; port: number }, flags: MetricsFlags): { enable: boolean; bindAddress: string; port: number; key: string } {
  if (flags.metricsBindAddress === undefined && flags.metricsPort === undefined) return { ...mc, key: "modules.edgeTunnel.metricConfig.port" };
  return {
    enable: true,
    bindAddress: flags.metricsBindAddress ?? mc.bindAddress,
    port: flags.metricsPort ?? mc.port,
    key: flags.metricsPort !== undefined ? "--metrics-port" : "modules.edgeTunnel.metricConfig.port",
  };
}
