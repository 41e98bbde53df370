// One small logger for every module: levelled, one line per event, text (key=value) or JSON (one
// object per line). Injected (as `log`) into components so tests can capture or silence it.
// Loggers made without an explicit level/format follow the process-wide settings, which main sets
// from --log-level/--log-format and the config file after loggers already exist.

export type Level = "debug" | "info" | "warn" | "error";
export type Format = "text" | "json";

export const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];
export const FORMATS: readonly Format[] = ["text", "json"];

export interface Logger {
  debug(msg: string, ctx?: Record<string, unknown>): void;
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>): void;
  error(msg: string, ctx?: Record<string, unknown>): void;
  child(component: string): Logger;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLevel(v: unknown): v is Level {
  return typeof v === "string" && (LEVELS as readonly string[]).includes(v);
}

export function isFormat(v: unknown): v is Format {
  return typeof v === "string" && (FORMATS as readonly string[]).includes(v);
}

/** Process-wide defaults; EDGEMESH_LOG_LEVEL / EDGEMESH_LOG_FORMAT seed them (tests, debugging). */
const settings: { level: Level; format: Format } = {
  level: isLevel(process.env.EDGEMESH_LOG_LEVEL) ? process.env.EDGEMESH_LOG_LEVEL : "info",
  format: isFormat(process.env.EDGEMESH_LOG_FORMAT) ? process.env.EDGEMESH_LOG_FORMAT : "text",
};

/** Set the level and/or format every logger without its own follows, from now on. */
export function configureLogging(o: { level?: Level; format?: Format }): void {
  if (o.level) settings.level = o.level;
  if (o.format) settings.format = o.format;
}

export function loggingSettings(): { readonly level: Level; readonly format: Format } {
  return { ...settings };
}

export interface LoggerOptions {
  /** Fixed level; default: the process-wide one. */
  level?: Level;
  /** Fixed format; default: the process-wide one. */
  format?: Format;
  component?: string;
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = options.now ?? (() => new Date());
  const make = (component: string): Logger => {
    const emit = (level: Level, msg: string, ctx?: Record<string, unknown>) => {
      if (ORDER[level] < ORDER[options.level ?? settings.level]) return;
      const ts = now().toISOString();
      write((options.format ?? settings.format) === "json" ? jsonLine(ts, level, component, msg, ctx) : textLine(ts, level, component, msg, ctx));
    };
    return {
      debug: (m, c) => emit("debug", m, c),
      info: (m, c) => emit("info", m, c),
      warn: (m, c) => emit("warn", m, c),
      error: (m, c) => emit("error", m, c),
      child: (name) => make(component ? `${component}/${name}` : name),
    };
  };
  return make(options.component ?? "edgemesh");
}

/** A logger that records lines, for tests. */
export function createMemoryLogger(options: { format?: Format; level?: Level } = {}): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: options.level ?? "debug", format: options.format ?? "text", write: (l) => lines.push(l) });
  return Object.assign(log, { lines });
}

function textLine(ts: string, level: Level, component: string, msg: string, ctx?: Record<string, unknown>): string {
  let line = `${ts} ${level.toUpperCase().padEnd(5)} [${component}] ${msg}`;
  if (ctx) for (const [k, v] of Object.entries(ctx)) line += ` ${k}=${formatText(v)}`;
  return line;
}

const RESERVED = new Set(["ts", "level", "component", "msg"]);

/** One JSON object: ts, level, component, msg, then the context (a clashing key gets a "ctx_" prefix). */
function jsonLine(ts: string, level: Level, component: string, msg: string, ctx?: Record<string, unknown>): string {
  const o: Record<string, unknown> = { ts, level, component, msg };
  if (ctx) for (const [k, v] of Object.entries(ctx)) o[RESERVED.has(k) ? `ctx_${k}` : k] = jsonValue(v);
  try {
    return JSON.stringify(o);
  } catch {
    return JSON.stringify({ ts, level, component, msg, ctx_error: "context not serializable" });
  }
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Error) return v.message;
  if (typeof v === "bigint") return v.toString();
  if (v === undefined) return null;
  return v;
}

function formatText(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (typeof v === "bigint") return v.toString();
  try {
    return typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
  } catch {
    return '"[unserializable]"';
  }
}
