// The real Prometheus text parser and linter: `promtool check metrics` (Debian's prometheus
// package, installed by scripts/setup-system.sh). It parses the exposition with Prometheus's own
// expfmt parser and lints names (counters end in _total, no abbreviated units, HELP present).

export interface PromtoolResult {
  readonly code: number;
  /** promtool's findings, one per line ("" when the exposition is clean). */
  readonly output: string;
}

export async function promtoolCheck(exposition: string): Promise<PromtoolResult> {
  const proc = Bun.spawn(["promtool", "check", "metrics"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.write(exposition);
  await proc.stdin.end();
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, output: (out + err).trim() };
}

/** Sample lines of an exposition: full series name (with labels) -> value. */
export function parseSamples(exposition: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of exposition.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    const v = line.slice(i + 1);
    out.set(line.slice(0, i), v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v));
  }
  return out;
}
