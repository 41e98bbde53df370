// Memory of a process from /proc, and the runtime options bin/edgemesh gives `edgemesh agent`:
// shared by bench/mem-bench.ts (our agents) and bench/macro/libp2p-floor.ts (bare js-libp2p).

import { readFileSync } from "node:fs";

export interface Mem {
  rss: number;
  anon: number;
  file: number;
  shmem: number;
  hwm: number;
}

/** VmRSS, RssAnon, RssFile, RssShmem and VmHWM of a process, MiB (one decimal). */
export function memOf(pid: number): Mem {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  const mib = (key: string) => Math.round((kib(key) / 1024) * 10) / 10;
  return { rss: mib("VmRSS"), anon: mib("RssAnon"), file: mib("RssFile"), shmem: mib("RssShmem"), hwm: mib("VmHWM") };
}

/** Rss by kind of mapping (MiB) from /proc/PID/smaps: where VmRSS lives. jit: anonymous executable
 * (JSC's JIT code); anon: other anonymous (JS heap, malloc arenas, stacks of threads); bun: Bun's own
 * executable; lib: shared libraries; other: named files, [stack], [heap], [vdso]... */
export function smapsOf(pid: number): Record<string, number> {
  const out: Record<string, number> = { anon: 0, jit: 0, bun: 0, lib: 0, other: 0 };
  let kind = "other";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = line.match(/^[0-9a-f]+-[0-9a-f]+ (\S{4}) \S+ \S+ \d+\s*(.*)$/);
    if (head) {
      const [, perms, name] = head;
      kind = name === "" ? (perms!.includes("x") ? "jit" : "anon") : /\/bun(\.exe)?$/.test(name!) ? "bun" : /\.so(\.|$)/.test(name!) ? "lib" : "other";
      continue;
    }
    const rss = line.match(/^Rss:\s+(\d+) kB/);
    if (rss) out[kind]! += Number(rss[1]) / 1024;
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 10) / 10;
  return out;
}

/** CPU seconds (user + system) of a process so far (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function keyValue(kv: string, what: string): [string, string] {
  const i = kv.indexOf("=");
  if (i <= 0) throw new Error(`${what}: expected NAME=VALUE, got ${kv}`);
  return [kv.slice(0, i), kv.slice(i + 1)];
}

/** What bin/edgemesh exports for `edgemesh agent` (bin/agent.env; unless the environment sets it). */
export function agentLauncherEnv(): Record<string, string> {
  return Object.fromEntries(
    readFileSync(new URL("../../bin/agent.env", import.meta.url), "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
      .map((l) => keyValue(l, "bin/agent.env")),
  );
}
