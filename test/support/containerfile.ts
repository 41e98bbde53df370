// A small reader for the Containerfile (Dockerfile syntax): logical lines (backslash
// continuations, comments, parser directives), instructions, build stages and their ARG scopes.
// No container engine runs on the build machines; this is what lets the tests check the file's
// structure and run its install stage's shell step for real.

export interface Instruction {
  readonly keyword: string;
  /** Everything after the keyword, continuations joined with a space. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name: string;
  readonly image: string;
  readonly instructions: readonly Instruction[];
}

export interface Containerfile {
  /** ARGs before the first FROM (usable in FROM lines only, or re-declared in a stage). */
  readonly globalArgs: ReadonlyMap<string, string | undefined>;
  readonly stages: readonly Stage[];
}

const KEYWORDS = new Set(["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"]);

export class ContainerfileError extends Error {
  override name = "ContainerfileError";
}

export function parseContainerfile(text: string): Containerfile {
  const instructions: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    // A trailing backslash continues the instruction; comment lines inside are dropped.
    while (/\\\s*$/.test(line)) {
      line = line.replace(/\\\s*$/, " ");
      i++;
      if (i >= lines.length) throw new ContainerfileError(`line ${start}: the file ends inside a continued instruction`);
      if (/^\s*#/.test(lines[i]!)) {
        line += "\\";
        continue;
      }
      line += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(line);
    const keyword = m?.[1]?.toUpperCase() ?? "";
    if (!KEYWORDS.has(keyword)) throw new ContainerfileError(`line ${start}: unknown instruction ${JSON.stringify(m?.[1] ?? line.trim())}`);
    instructions.push({ keyword, args: m![2]!.replace(/\s+/g, " ").trim(), line: start });
  }

  const globalArgs = new Map<string, string | undefined>();
  const stages: Stage[] = [];
  let current: { name: string; image: string; instructions: Instruction[] } | undefined;
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const fm = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!fm) throw new ContainerfileError(`line ${ins.line}: FROM needs an image and optionally AS name, got ${JSON.stringify(ins.args)}`);
      const name = fm[2] ?? String(stages.length);
      if (stages.some((s) => s.name === name)) throw new ContainerfileError(`line ${ins.line}: stage name ${name} used twice`);
      current = { name, image: fm[1]!, instructions: [] };
      stages.push(current);
    } else if (!current) {
      if (ins.keyword !== "ARG") throw new ContainerfileError(`line ${ins.line}: ${ins.keyword} before the first FROM (only ARG may come first)`);
      const [name, value] = splitArg(ins.args);
      globalArgs.set(name, value);
    } else {
      current.instructions.push(ins);
    }
  }
  if (stages.length === 0) throw new ContainerfileError("no FROM: not a Containerfile");
  return { globalArgs, stages };
}

export function splitArg(args: string): [string, string | undefined] {
  const eq = args.indexOf("=");
  return eq < 0 ? [args.trim(), undefined] : [args.slice(0, eq).trim(), unquote(args.slice(eq + 1).trim())];
}

export function unquote(s: string): string {
  return /^".*"$/.test(s) ? s.slice(1, -1) : s;
}

/** The ARGs a stage declares, with defaults. */
export function stageArgs(stage: Stage): Map<string, string | undefined> {
  return new Map(stage.instructions.filter((i) => i.keyword === "ARG").map((i) => splitArg(i.args)));
}

/** ${NAME} and $NAME references in a string. */
export function variablesIn(text: string): string[] {
  return [...text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)].map((m) => m[1]!);
}
