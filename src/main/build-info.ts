// What this build is: the package version, and the source revision when the image build recorded
// it (EDGEMESH_REVISION in the environment). Read once; reported as edgemesh_build_info.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createMetrics, registerProcessMetrics, type BuildInfo, type MetricsRegistry } from "../metrics/index.ts";

let cached: BuildInfo | undefined;

export function buildInfo(env: Readonly<Record<string, string | undefined>> = process.env): BuildInfo {
  if (cached) return cached;
  let version = "unknown";
  try {
    version = String(JSON.parse(readFileSync(resolve(import.meta.dir, "../../package.json"), "utf8")).version ?? "unknown");
  } catch {
    // a packaging without package.json: say so rather than fail
  }
  cached = { version, revision: env.EDGEMESH_REVISION || "unknown" };
  return cached;
}

/** The registry a running agent or dev mode exposes: its own families plus process_* and build info. */
export function createProcessMetrics(): MetricsRegistry {
  const metrics = createMetrics();
  registerProcessMetrics(metrics, buildInfo());
  return metrics;
}
