// Start-up failures of `edgemesh agent`: one line that names the cause and the fix, and nothing
// left behind. Every step that creates something on the node (device, chains, listeners, the
// tunnel) registers how to undo it; a failed start undoes them in reverse before it reports.

import { findPortHolders, type PortHolder, type Protocol } from "../host/index.ts";
import type { Logger } from "../log/index.ts";

/** A start-up failure whose message is already the one line an operator needs. */
export class StartupError extends Error {
  override readonly name = "StartupError";
}

export interface UndoStack {
  /** Register how to undo a step that just succeeded. */
  add(what: string, undo: () => unknown): void;
  /** Undo every registered step, newest first; a failing undo is logged and the rest still run. */
  run(): Promise<void>;
}

export function createUndoStack(log: Logger): UndoStack {
  const steps: { what: string; undo: () => unknown }[] = [];
  return {
    add: (what, undo) => void steps.push({ what, undo }),
    async run() {
      while (steps.length > 0) {
        const step = steps.pop()!;
        try {
          await step.undo();
        } catch (err) {
          log.warn("start failed and undoing a step failed too; remove it by hand", { step: step.what, error: (err as Error).message });
        }
      }
    },
  };
}

export interface ListenSite {
  /** What listens there ("DNS", "the admin endpoint"). */
  what: string;
  /** Config key that sets the address or port. */
  key: string;
  host: string;
  port: number;
  protocols: readonly Protocol[];
}

/**
 * The one-line error for a listen that failed on `site`, or `err` unchanged when it is not a
 * listen error. A taken port names the process holding it when this namespace can see it.
 */
export function listenFailure(err: unknown, site: ListenSite, holders: (p: Protocol, host: string, port: number) => PortHolder[] = findPortHolders): unknown {
  const code = errorCode(err);
  const where = `${site.host}:${site.port}`;
  if (code === "EADDRINUSE") {
    const found = site.protocols.flatMap((p) => holders(p, site.host, site.port).map((h) => `${h.command} (pid ${h.pid}, ${p})`));
    const by = found.length > 0
      ? `held by ${[...new Set(found)].join(", ")}`
      : `held by a process not visible from here (on the node: ss -lntup 'sport = :${site.port}')`;
    return new StartupError(`cannot listen on ${where} for ${site.what} (${site.key}): the address is in use, ${by}. Stop that process or set ${site.key} to a free one.`);
  }
  if (code === "EACCES") {
    return new StartupError(`cannot listen on ${where} for ${site.what} (${site.key}): permission denied; ports below 1024 need the capability NET_BIND_SERVICE (or set ${site.key} to a port from 1024 up).`);
  }
  if (code === "EADDRNOTAVAIL") {
    return new StartupError(`cannot listen on ${where} for ${site.what} (${site.key}): ${site.host} is not an address of this node; set ${site.key} to one that is.`);
  }
  return err;
}

/** The socket error's code, also when wrapped (Error.cause) or only in the text (libp2p). */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
    const m = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(e instanceof Error ? e.message : String(e));
    if (m) return m[1];
  }
  return undefined;
}
