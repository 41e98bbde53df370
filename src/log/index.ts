// Logging for every module: a levelled logger (text or JSON lines) and a per-key rate limiter for
// data-path warnings. Imports nothing of ours but metric types.

export {
  configureLogging,
  createLogger,
  createMemoryLogger,
  FORMATS,
  isFormat,
  isLevel,
  LEVELS,
  loggingSettings,
  type Format,
  type Level,
  type Logger,
  type LoggerOptions,
} from "./logger.ts";
export { LOG_LIMIT_INTERVAL_MS, LOG_LIMIT_MAX_KEYS, LogLimiter, type LogLimiterOptions } from "./limiter.ts";
