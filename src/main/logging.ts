// Where the log level and format come from, first found wins: --log-level/--log-format, the
// EDGEMESH_LOG_LEVEL/EDGEMESH_LOG_FORMAT environment, the config file's commonConfig.logLevel/
// logFormat, info/text. The flags are applied before the config loads (index.ts), so a config
// error is already written the chosen way.

import type { EdgeMeshAgentConfig } from "../control/index.ts";
import { configureLogging, isFormat, isLevel } from "../log/index.ts";
import type { LogFlags } from "./args.ts";

export function applyLogConfig(
  config: Pick<EdgeMeshAgentConfig, "commonConfig">,
  flags: LogFlags,
  env: Readonly<Record<string, string | undefined>> = process.env,
): void {
  const envLevel = isLevel(env.EDGEMESH_LOG_LEVEL) ? env.EDGEMESH_LOG_LEVEL : undefined;
  const envFormat = isFormat(env.EDGEMESH_LOG_FORMAT) ? env.EDGEMESH_LOG_FORMAT : undefined;
  configureLogging({
    level: flags.logLevel ?? envLevel ?? config.commonConfig.logLevel,
    format: flags.logFormat ?? envFormat ?? config.commonConfig.logFormat,
  });
}
