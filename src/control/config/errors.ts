// The configuration module's one error type. It carries every problem found in one pass, so
// a start that fails tells the operator about all bad keys at once, each with its full path.

export interface ConfigProblem {
  /** Dotted key path such as "modules.edgeDNS.listenPort" ("" for file-level problems). */
  readonly path: string;
  /** What is wrong, naming the bad value: `expected a port number 1..65535, got 70000`. */
  readonly message: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly ConfigProblem[];
  /** The file the problems are in, when the config came from a file. */
  readonly file: string | undefined;

  constructor(problems: readonly ConfigProblem[], file?: string) {
    super(formatProblems(problems, file));
    this.problems = Object.freeze([...problems]);
    this.file = file;
  }
}

function formatProblems(problems: readonly ConfigProblem[], file: string | undefined): string {
  const where = file ? `config ${file}` : "config";
  const lines = problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  if (lines.length === 1) return `${where}: ${lines[0]}`;
  return `${where}: ${lines.length} problems:\n${lines.map((l) => `  - ${l}`).join("\n")}`;
}

/** How a bad value is shown in a message: strings quoted, collections abbreviated. */
export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string" || value === null || typeof value !== "object") {
    const text = typeof value === "string" ? JSON.stringify(value) : String(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  }
  const json = JSON.stringify(value) ?? String(value);
  const kind = Array.isArray(value) ? "a list" : "a mapping";
  return json.length > 60 ? `${kind} ${json.slice(0, 57)}...` : `${kind} ${json}`;
}
