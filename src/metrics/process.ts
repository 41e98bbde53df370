// The standard process_* families (as client_golang's process collector names them, so the
// dashboards operators already have for Go daemons work) and edgemesh_build_info. All are read
// at scrape time; /proc is read at most once per scrape.

import { readdirSync, readFileSync } from "node:fs";
import type { MetricsRegistry } from "./types.ts";

export interface BuildInfo {
  readonly version: string;
  /** Source revision when known (the image build sets it), else "unknown". */
  readonly revision: string;
}

/** Register process_* and edgemesh_build_info on `metrics`. */
export function registerProcessMetrics(metrics: MetricsRegistry, build: BuildInfo, procRoot = "/proc/self"): void {
  const raw = metrics.unprefixed();
  const startSeconds = (performance.timeOrigin || Date.now()) / 1000;
  raw.counterFn("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  });
  raw.gaugeFn("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", () => startSeconds);
  const status = new ProcStatus(`${procRoot}/status`);
  raw.gaugeFn("process_resident_memory_bytes", "Resident memory size in bytes.", () => status.kib("VmRSS") * 1024 || process.memoryUsage.rss());
  raw.gaugeFn("process_virtual_memory_bytes", "Virtual memory size in bytes.", () => status.kib("VmSize") * 1024);
  raw.gaugeFn("process_open_fds", "Number of open file descriptors.", () => readdirSync(`${procRoot}/fd`).length);
  raw.gaugeFn("process_max_fds", "Maximum number of open file descriptors.", () => maxOpenFiles(`${procRoot}/limits`));
  metrics.gaugeFn("build_info", "A metric with a constant '1' value labeled by the version and revision edgemesh-bun was built from, and the Bun running it.", () => 1, {
    version: build.version,
    revision: build.revision,
    bun_version: typeof Bun !== "undefined" ? Bun.version : "unknown",
  });
}

/** /proc/self/status, read once per scrape (the gauges above are read back to back). */
class ProcStatus {
  #text = "";
  #at = -Infinity;
  constructor(private readonly path: string) {}

  kib(field: string): number {
    const now = performance.now();
    if (now - this.#at > 100) {
      this.#text = readFileSync(this.path, "utf8");
      this.#at = now;
    }
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(this.#text);
    return m ? Number(m[1]) : Number.NaN;
  }
}

/** The soft "Max open files" limit; +Inf when unlimited. */
export function maxOpenFiles(limitsPath: string): number {
  const m = /^Max open files\s+(\S+)/m.exec(readFileSync(limitsPath, "utf8"));
  if (!m) return Number.NaN;
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}
