// Command-line parsing for the one entry point. Tiny on purpose: four subcommands, a handful of
// flags, and an error that names the flag.

export type Command =
  | { cmd: "agent"; config: string }
  | { cmd: "gateway"; config: string }
  | { cmd: "dev"; manifests?: string; admin: string; dns: string; config?: string }
  | { cmd: "status"; admin: string; json: boolean }
  | { cmd: "help" };

export const USAGE = `usage:
  edgemesh agent --config FILE          run the node agent (root; NODE_NAME from the environment)
  edgemesh dev [--manifests DIR] [--admin HOST:PORT] [--dns HOST:PORT] [--config FILE]
                                        single-node dev mode on loopback (no root, no cluster);
                                        port 0 picks a free port and prints it
  edgemesh gateway --config FILE        edge gateway only
  edgemesh status [--admin HOST:PORT] [--json]
                                        print the routes of a running agent`;

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseArgs(argv: readonly string[]): Command {
  const [cmd, ...rest] = argv;
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf("=");
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else if (arg === "--json" || arg === "--help") {
      flags.set(arg.slice(2), true);
    } else {
      const value = rest[++i];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      flags.set(arg.slice(2), value);
    }
  }
  const allow = (...names: string[]) => {
    for (const name of flags.keys()) {
      if (!names.includes(name)) throw new UsageError(`unknown flag --${name} for "${cmd}"`);
    }
  };
  const str = (name: string) => {
    const v = flags.get(name);
    return typeof v === "string" ? v : undefined;
  };
  if (flags.has("help")) return { cmd: "help" };
  switch (cmd) {
    case "agent":
    case "gateway": {
      allow("config");
      const config = str("config");
      if (!config) throw new UsageError(`${cmd} needs --config FILE`);
      return { cmd, config };
    }
    case "dev":
      allow("manifests", "admin", "dns", "config");
      return {
        cmd,
        manifests: str("manifests"),
        admin: str("admin") ?? "127.0.0.1:10551",
        dns: str("dns") ?? "127.0.0.1:5353",
        config: str("config"),
      };
    case "status":
      allow("admin", "json");
      return { cmd, admin: str("admin") ?? "127.0.0.1:10551", json: flags.has("json") };
    case undefined:
    case "help":
    case "-h":
      return { cmd: "help" };
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}
