// One small logger for every module: levelled, one line per event, key=value context.
// Injected (as `log`) into components so tests can capture or silence it.

export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(msg: string, ctx?: Record<string, unknown>): void;
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>): void;
  error(msg: string, ctx?: Record<string, unknown>): void;
  child(component: string): Logger;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(options: { level?: Level; component?: string; write?: (line: string) => void } = {}): Logger {
  const min = ORDER[options.level ?? ((process.env.EDGEMESH_LOG_LEVEL as Level) || "info")] ?? ORDER.info;
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const make = (component: string): Logger => {
    const emit = (level: Level, msg: string, ctx?: Record<string, unknown>) => {
      if (ORDER[level] < min) return;
      let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${component}] ${msg}`;
      if (ctx) for (const [k, v] of Object.entries(ctx)) line += ` ${k}=${format(v)}`;
      write(line);
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
export function createMemoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
  return Object.assign(log, { lines });
}

function format(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
