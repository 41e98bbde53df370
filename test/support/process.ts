// Spawned-process helpers for tests: wait for a line on stdout/stderr, always kill at the end.

import type { Subprocess } from "bun";

export interface Watched {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything printed so far (stdout and stderr interleaved by arrival). */
  output(): string;
  /** Resolve with the first match of `re` in the output, waiting up to `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): Promise<number>;
}

export function spawnWatched(cmd: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Watched {
  const proc = Bun.spawn(cmd, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
  });
  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const w of waiters) w();
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return {
    proc,
    output: () => text,
    waitFor(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.match(re);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; output so far:\n${text.slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
        proc.exited.then(() => setTimeout(check, 50));
      });
    },
    async kill(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const killer = setTimeout(() => proc.kill("SIGKILL"), 8000);
      const code = await proc.exited;
      clearTimeout(killer);
      return code;
    },
  };
}
