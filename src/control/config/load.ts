// Reads the config file (YAML or JSON; JSON is YAML), reports syntax errors with file, line
// and column, and hands the document to resolveConfig. Also the NODE_NAME check for agents.

import { readFileSync } from "node:fs";
import { loadAll, YAMLException } from "js-yaml";
import type { Env } from "./defaults.ts";
import { ConfigError } from "./errors.ts";
import type { EdgeMeshAgentConfig } from "./types.ts";
import { resolveConfig } from "./validate.ts";

export interface ConfigSource {
  /** File to read; also the name used in messages when `text` is given. */
  path?: string;
  /** The file's content; when given, `path` is not read. Neither = all defaults. */
  text?: string;
  /** Usually process.env; see resolveConfig. Absent = empty environment. */
  env?: Env;
  /** Told about keys that were accepted but ignored or re-cased. */
  notice?: (message: string) => void;
  /** File reader, injectable for tests; defaults to a UTF-8 readFileSync. */
  readFile?: (path: string) => string;
}

export function loadConfig(source: ConfigSource = {}): EdgeMeshAgentConfig {
  const file = source.path;
  let text = source.text;
  if (text === undefined && file !== undefined) {
    try {
      text = (source.readFile ?? ((p: string) => readFileSync(p, "utf8")))(file);
    } catch (err) {
      throw new ConfigError([{ path: "", message: `cannot read the file: ${(err as Error).message}` }], file);
    }
  }
  const raw = text === undefined ? undefined : parseDocument(text, file);
  return resolveConfig(raw, { env: source.env, file, notice: source.notice });
}

/** One YAML/JSON document; empty or comment-only text is an empty config, as in EdgeMesh. */
export function parseDocument(text: string, file?: string): unknown {
  let docs: unknown[];
  try {
    docs = loadAll(text, { filename: file });
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    const m = err.mark;
    const where = m ? `line ${m.line + 1}, column ${m.column + 1}: ` : "";
    const snippet = m?.snippet ? `\n${m.snippet}` : "";
    throw new ConfigError([{ path: "", message: `${where}YAML syntax error: ${err.reason}${snippet}` }], file);
  }
  if (docs.length > 1) {
    throw new ConfigError([{ path: "", message: `expected one YAML document, got ${docs.length} (separated by ---)` }], file);
  }
  return docs[0];
}

/**
 * An agent must know its node: EdgeMesh refuses to start without NODE_NAME (the tunnel's
 * identity and endpoint locality depend on it). Dev mode does not need it, so this is a
 * separate check. Returns the node name.
 */
export function requireNodeName(config: EdgeMeshAgentConfig): string {
  if (config.nodeName === "") {
    throw new ConfigError([{ path: "NODE_NAME", message: "required in agent mode (set it from spec.nodeName), got nothing" }]);
  }
  return config.nodeName;
}
