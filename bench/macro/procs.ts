// Child processes for macro benchmarks: every server, proxy and load generator runs in its own
// process so its CPU and RSS are its own. Every process started here is registered and killed by
// `stopAll()` (check.ts calls it in finally and on SIGINT/SIGTERM): a crashed benchmark leaves
// nothing running.

import type { Subprocess } from "bun";

const BUN = process.execPath;
const live = new Set<Subprocess>();

export interface Child {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  readonly pid: number;
  /** Next JSON line printed on stdout (non-JSON lines are skipped), or a timeout error. */
  nextJson<T = any>(timeoutMs?: number): Promise<T>;
  /** Write one line on the child's stdin. */
  send(line: string): void;
  /** All stdout text read so far (for tools that print text, like wrk). */
  stdoutText(): string;
  stderrText(): string;
  /** Resolves with the exit code, or kills the child after timeoutMs. */
  exited(timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

export function spawnChild(cmd: string[], options: { env?: Record<string, string> } = {}): Child {
  const proc = Bun.spawn(cmd, {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  live.add(proc);
  proc.exited.then(() => live.delete(proc));
  let out = "";
  let err = "";
  const lines: string[] = [];
  const waiters: ((line: string | null) => void)[] = [];
  let closed = false;
  (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of proc.stdout) {
      const text = decoder.decode(chunk, { stream: true });
      out += text;
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl).trim();
        partial = partial.slice(nl + 1);
        if (!line.startsWith("{") && !line.startsWith("[")) continue;
        const w = waiters.shift();
        if (w) w(line);
        else lines.push(line);
      }
    }
    closed = true;
    for (const w of waiters.splice(0)) w(null);
  })();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
  })();

  const child: Child = {
    proc,
    pid: proc.pid,
    nextJson<T>(timeoutMs = 15_000): Promise<T> {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(JSON.parse(ready) as T);
      if (closed) return Promise.reject(new Error(`${cmd.join(" ")}: exited without output; stderr: ${err.slice(-800)}`));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(take);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${cmd.join(" ")}: no JSON line within ${timeoutMs} ms; stderr: ${err.slice(-800)}`));
        }, timeoutMs);
        function take(line: string | null) {
          clearTimeout(timer);
          if (line === null) reject(new Error(`${cmd.join(" ")}: exited without output; stderr: ${err.slice(-800)}`));
          else resolve(JSON.parse(line) as T);
        }
        waiters.push(take);
      });
    },
    send(line: string) {
      proc.stdin.write(line + "\n");
      proc.stdin.flush();
    },
    stdoutText: () => out,
    stderrText: () => err,
    async exited(timeoutMs: number): Promise<number> {
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await proc.exited;
      clearTimeout(timer);
      // Let the readers finish so stdoutText() is complete.
      await Bun.sleep(10);
      return code;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 2_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
  return child;
}

/** A Bun script from bench/macro in its own process. */
export function spawnBun(script: string, args: string[] = [], options: { env?: Record<string, string> } = {}): Child {
  return spawnChild([BUN, new URL(script, import.meta.url).pathname, ...args], options);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map(async (p) => {
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 2_000);
    await p.exited;
    clearTimeout(timer);
  }));
}

/** A loopback port free right now (the kernel's pick); tools like iperf3 need a number up front. */
export function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** Wait until something accepts TCP connections on 127.0.0.1:port. */
export async function waitTcp(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** VmRSS (current) and VmHWM (peak) of a process, in MiB (what ps/top show as "MB"). */
export async function memoryOf(pid: number): Promise<{ rssMiB: number; peakMiB: number }> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const kb = (key: string) => {
    const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) / 1024;
  };
  return { rssMiB: kb("VmRSS"), peakMiB: kb("VmHWM") };
}

/** Whether a command exists on PATH (iperf3, socat, wrk). */
export function haveTool(name: string): boolean {
  return Bun.which(name) !== null;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * CPU seconds used by a process so far, including its reaped children (socat forks one per
 * connection). From /proc/PID/stat: utime + stime + cutime + cstime.
 */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await Bun.file(`/proc/${pid}/stat`).text();
  // Fields after the parenthesised command name (which may contain spaces).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14 -> index 11.
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return ticks / TICKS_PER_SECOND;
}

/**
 * CPU seconds the whole machine has spent so far, from /proc/stat: user, nice, system, irq and
 * softirq (a task's system time includes the softirq work done on its behalf, so leaving that
 * column out made the machine look less busy than this process tree).
 */
export async function machineCpuSeconds(): Promise<number> {
  const line = (await Bun.file("/proc/stat").text()).split("\n", 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / TICKS_PER_SECOND;
}

/** CPU seconds of this process and of every child started here (live or reaped). */
export async function treeCpuSeconds(): Promise<number> {
  let total = await cpuSecondsOf(process.pid);
  for (const p of live) total += await cpuSecondsOf(p.pid).catch(() => 0);
  return total;
}

/**
 * Measures what other processes on the machine took while a benchmark ran: machine CPU minus
 * this process tree's, as a share of all cores. A run with a large share was not quiet.
 */
export async function outsideLoad(): Promise<() => Promise<number>> {
  const m0 = await machineCpuSeconds();
  const t0 = await treeCpuSeconds();
  const w0 = performance.now();
  return async () => {
    const outside = (await machineCpuSeconds()) - m0 - ((await treeCpuSeconds()) - t0);
    return Math.max(0, outside) / (((performance.now() - w0) / 1000) * navigator.hardwareConcurrency);
  };
}
