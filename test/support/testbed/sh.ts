// Running commands for the test bed, inside a namespace or not. Failures throw with the command
// and its stderr, so a broken topology step says what broke.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(argv: readonly string[], options: { stdin?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<RunResult> {
  const proc = Bun.spawn([...argv], {
    stdin: options.stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: options.env ? { ...process.env, ...options.env } : undefined,
  });
  if (options.stdin !== undefined && proc.stdin) {
    proc.stdin.write(options.stdin);
    await proc.stdin.end();
  }
  // Every command is bounded: a hung client must not hang the suite.
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function must(argv: readonly string[], options?: Parameters<typeof run>[1]): Promise<RunResult> {
  const res = await run(argv, options);
  if (res.code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${res.code}): ${res.stderr.trim() || res.stdout.trim()}`);
  return res;
}

/** argv to run inside network namespace `ns` (with its /etc/netns/<ns>/resolv.conf). */
export function inNs(ns: string, argv: readonly string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}
