// Watch streams of the stand-in apiserver (see ../apiserver.ts): history for resuming, live
// fan-out, bookmarks, timeoutSeconds, 410 for compacted resourceVersions, and cutting streams.

import { fieldSelector, status, type ResourceDef } from "./resources.ts";

interface Event {
  rv: number;
  def: ResourceDef;
  type: "ADDED" | "MODIFIED" | "DELETED";
  obj: { metadata: { namespace?: string; name?: string }; type?: string };
}

interface Watcher {
  def: ResourceDef;
  apiVersion: string;
  ns?: string;
  /** fieldSelector: objects that do not match are not sent (the real apiserver also turns a
   * MODIFIED that leaves the selection into DELETED; the stand-in's tests never move objects out). */
  select: ((obj: Event["obj"]) => boolean) | null;
  bookmarks: boolean;
  controller: ReadableStreamDefaultController<Uint8Array>;
  timer?: ReturnType<typeof setTimeout>;
  closed: boolean;
}

export interface WatchHub {
  publish(def: ResourceDef, rv: number, type: Event["type"], obj: Event["obj"]): void;
  watch(def: ResourceDef, version: string, q: URLSearchParams, ns: string | undefined,
    current: ReadonlyMap<string, Event["obj"]>, goneAs: "event" | "http"): Response;
  compact(rv: number): void;
  compactedRv(): number;
  dropAll(midEvent: boolean): number;
  size(): number;
  close(): void;
}

const encoder = new TextEncoder();

export function createWatchHub(o: { historyLimit: number; bookmarkIntervalMs: number; currentRv: () => number }): WatchHub {
  let history: Event[] = [];
  let compacted = 0;
  const watchers = new Set<Watcher>();

  const send = (w: Watcher, line: unknown) => {
    if (w.closed) return;
    try {
      w.controller.enqueue(encoder.encode(JSON.stringify(line) + "\n"));
    } catch {
      end(w);
    }
  };
  const end = (w: Watcher, error?: Error) => {
    if (w.closed) return;
    w.closed = true;
    clearTimeout(w.timer);
    watchers.delete(w);
    try {
      if (error) w.controller.error(error);
      else w.controller.close();
    } catch {
      // the client already went away
    }
  };
  const matches = (w: Watcher, e: Event) => e.def === w.def && (!w.ns || e.obj.metadata.namespace === w.ns) && (w.select === null || w.select(e.obj));
  const eventLine = (w: Watcher, e: Event) => ({ type: e.type, object: { apiVersion: w.apiVersion, kind: w.def.kind, ...e.obj } });

  const bookmarkTimer = setInterval(() => {
    for (const w of watchers) {
      if (w.bookmarks) {
        send(w, { type: "BOOKMARK", object: { kind: w.def.kind, apiVersion: w.apiVersion, metadata: { resourceVersion: String(o.currentRv()) } } });
      }
    }
  }, o.bookmarkIntervalMs);
  bookmarkTimer.unref?.();

  return {
    publish(def, rv, type, obj) {
      const e: Event = { rv, def, type, obj };
      history.push(e);
      if (history.length > o.historyLimit) {
        const dropped = history.splice(0, history.length - o.historyLimit);
        compacted = dropped[dropped.length - 1]!.rv;
      }
      for (const w of watchers) if (matches(w, e)) send(w, eventLine(w, e));
    },

    watch(def, version, q, ns, current, goneAs) {
      const from = Number(q.get("resourceVersion") || 0);
      const apiVersion = def.group ? `${def.group}/${version}` : version;
      const gone = from > 0 && from < compacted;
      const message = `too old resource version: ${from} (${compacted})`;
      if (gone && goneAs === "http") {
        return new Response(JSON.stringify(status(410, "Expired", message)), { status: 410, headers: { "content-type": "application/json" } });
      }
      const select = fieldSelector(q.get("fieldSelector"));
      if (select instanceof Error) {
        return new Response(JSON.stringify(status(400, "BadRequest", select.message)), { status: 400, headers: { "content-type": "application/json" } });
      }
      let watcher: Watcher | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const w: Watcher = { def, apiVersion, ns, select, controller, closed: false, bookmarks: q.get("allowWatchBookmarks") === "true" };
          watcher = w;
          watchers.add(w);
          // Bun.serve sends the response headers only with the first body bytes; the real apiserver
          // flushes them at once. A newline is whitespace between JSON values, which every watch
          // decoder skips, so it makes the headers go out now without inventing an event.
          controller.enqueue(encoder.encode("\n"));
          if (gone) {
            send(w, { type: "ERROR", object: status(410, "Expired", message) });
            end(w);
            return;
          }
          if (from === 0) {
            for (const obj of current.values()) if ((!ns || obj.metadata.namespace === ns) && (select === null || select(obj))) send(w, eventLine(w, { rv: 0, def, type: "ADDED", obj }));
          } else {
            for (const e of history) if (e.rv > from && matches(w, e)) send(w, eventLine(w, e));
          }
          const timeout = Number(q.get("timeoutSeconds") || 0);
          if (timeout > 0) w.timer = setTimeout(() => end(w), timeout * 1000);
        },
        cancel() {
          if (watcher) end(watcher);
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "application/json", "transfer-encoding": "chunked" } });
    },

    compact(rv) {
      history = [];
      compacted = rv;
    },
    compactedRv: () => compacted,

    dropAll(midEvent) {
      const n = watchers.size;
      for (const w of [...watchers]) {
        if (midEvent) {
          try {
            w.controller.enqueue(encoder.encode('{"type":"ADDED","object":{"metadata":{"name":"half'));
          } catch {
            // ignore
          }
        }
        end(w, new Error("stand-in apiserver: watch connection dropped on purpose (ignore this log line)"));
      }
      return n;
    },
    size: () => watchers.size,
    close() {
      clearInterval(bookmarkTimer);
      for (const w of [...watchers]) end(w);
    },
  };
}
