// The list/watch loop against a scripted API (no sockets): the stream edge cases that the
// stand-in apiserver does not produce on its own.

import { afterEach, describe, expect, test } from "bun:test";
import type { KubeObject } from "../../src/control/objects.ts";
import { systemClock } from "../../src/control/kube/deps.ts";
import type { KubeFetch } from "../../src/control/kube/fetch-tls.ts";
import { createInformer, type Informer } from "../../src/control/kube/informers.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

type Handler = (q: URLSearchParams, signal: AbortSignal) => Response;

/** A watch body: the given lines, then (unless `end`) open until the client aborts. */
function stream(lines: string[], signal: AbortSignal, end = false): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const l of lines) c.enqueue(new TextEncoder().encode(l + "\n"));
      if (end) c.close();
      else signal.addEventListener("abort", () => c.error(new DOMException("aborted", "AbortError")));
    },
  });
  return new Response(body, { status: 200 });
}
const ev = (type: string, name: string, rv: string) => JSON.stringify({ type, object: { kind: "Service", metadata: { name, namespace: "d", resourceVersion: rv } } });
const list = (rv: string, names: string[]) =>
  Response.json({ metadata: { resourceVersion: rv }, items: names.map((n) => ({ metadata: { name: n, namespace: "d", resourceVersion: rv } })) });

let informer: Informer | undefined;
afterEach(async () => {
  await informer?.stop();
  informer = undefined;
});

function run(script: { list: () => Response; watch: Handler[] }, opts: { backoffInitialMs?: number } = {}) {
  const watches: URLSearchParams[] = [];
  const lists: number[] = [];
  const events: string[] = [];
  const fetch: KubeFetch = {
    server: "http://scripted",
    async request(path, init) {
      const q = new URL("http://x" + path).searchParams;
      if (q.get("watch") !== "true") {
        lists.push(1);
        return script.list();
      }
      watches.push(q);
      const h = script.watch[Math.min(watches.length - 1, script.watch.length - 1)]!;
      return h(q, init!.signal!);
    },
    close() {},
  };
  const metrics = createMetrics();
  informer = createInformer({
    resource: { kind: "Service", path: "/api/v1/services", apiVersion: "v1" },
    fetch,
    handlers: {
      onList: (items: KubeObject[]) => events.push(`list ${items.map((i) => i.metadata.name).join(",")}`),
      onEvent: (type, obj) => events.push(`${type} ${obj.metadata.name}`),
    },
    log: createMemoryLogger(), metrics, clock: systemClock, random: () => 0.999,
    backoffInitialMs: opts.backoffInitialMs ?? 10, backoffMaxMs: 1000,
  });
  informer.start();
  return { watches, lists, events, metrics };
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(2);
  }
};

describe("informer stream handling", () => {
  test("a malformed line ends the stream; the watch resumes from the last good resourceVersion without relisting", async () => {
    const r = run({
      list: () => list("10", ["a"]),
      watch: [(q, s) => stream([ev("ADDED", "b", "11"), "{garbage", ev("ADDED", "never", "12")], s), (q, s) => stream([ev("ADDED", "c", "13")], s)],
    });
    await until(() => r.events.includes("ADDED c"));
    expect(r.events).toEqual(["list a", "ADDED b", "ADDED c"]);
    expect(r.watches.map((q) => q.get("resourceVersion"))).toEqual(["10", "11"]);
    expect(r.lists).toHaveLength(1);
    expect(r.metrics.snapshot()['kube_watch_bad_lines_total{kind="Service"}']).toBe(1);
    // The last event stamped the kind as current (the system clock: within the test's run).
    const last = r.metrics.snapshot()['kube_last_sync_timestamp_seconds{kind="Service"}']!;
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(5);
  });

  test("an ERROR event other than 410 backs off and resumes from the same resourceVersion", async () => {
    const err = JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 500, reason: "InternalError", message: "etcd hiccup" } });
    const r = run({ list: () => list("10", []), watch: [(q, s) => stream([ev("ADDED", "b", "11"), err], s), (q, s) => stream([], s)] });
    await until(() => r.watches.length === 2);
    expect(r.watches[1]!.get("resourceVersion")).toBe("11");
    expect(r.lists).toHaveLength(1);
    expect(r.metrics.snapshot()['kube_watch_errors_total{kind="Service"}']).toBe(1);
  });

  test("an ERROR event with code 410 relists at once", async () => {
    const gone = JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" } });
    let n = 0;
    const r = run({ list: () => list(String(10 + n++), n === 1 ? ["a"] : ["b"]), watch: [(q, s) => stream([gone], s), (q, s) => stream([], s)] });
    await until(() => r.events.length === 2);
    expect(r.events).toEqual(["list a", "list b"]);
    expect(r.watches.map((q) => q.get("resourceVersion"))).toEqual(["10", "11"]);
    expect(r.metrics.snapshot()['kube_relists_total{kind="Service"}']).toBe(1);
  });

  test("a server that accepts the watch and closes it at once, every time, is retried with growing delays", async () => {
    const r = run({ list: () => list("10", []), watch: [(q, s) => stream([], s, true)] }, { backoffInitialMs: 40 });
    await Bun.sleep(400);
    // 40 + 80 + 160 ms of backoff fit in 400 ms (a hot loop would make thousands of requests).
    expect(r.watches.length).toBeGreaterThanOrEqual(3);
    expect(r.watches.length).toBeLessThanOrEqual(5);
    expect(r.lists).toHaveLength(1);
  });

  test("a watch that ends normally (server timeout) reconnects at once from its resourceVersion", async () => {
    const r = run({ list: () => list("10", []), watch: [(q, s) => stream([ev("MODIFIED", "x", "15")], s, true), (q, s) => stream([], s)] }, { backoffInitialMs: 5000 });
    await until(() => r.watches.length === 2, 1000);
    expect(r.watches[1]!.get("resourceVersion")).toBe("15");
    expect(r.watches[0]!.get("allowWatchBookmarks")).toBe("true");
    const timeout = Number(r.watches[0]!.get("timeoutSeconds"));
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(timeout).toBeLessThanOrEqual(600);
  });

  test("events split across chunks, even inside a multi-byte character, are reassembled", async () => {
    const line = JSON.stringify({ type: "ADDED", object: { kind: "Service", metadata: { name: "caf\u00e9-\u6771\u4eac", namespace: "d", resourceVersion: "11" } } }) + "\n";
    const bytes = new TextEncoder().encode(line + line.replace('"11"', '"12"').replace("caf", "bar"));
    const cut = bytes.indexOf(0xc3) + 1; // between the two bytes of "é"
    const r = run({
      list: () => list("10", []),
      watch: [(q, s) => new Response(new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(bytes.slice(0, 5));
          c.enqueue(bytes.slice(5, cut));
          c.enqueue(bytes.slice(cut));
          s.addEventListener("abort", () => c.error(new DOMException("aborted", "AbortError")));
        },
      }))],
    });
    await until(() => r.events.length === 3);
    expect(r.events).toEqual(["list ", "ADDED caf\u00e9-\u6771\u4eac", "ADDED bar\u00e9-\u6771\u4eac"]);
    expect(informer!.resourceVersion).toBe("12");
  });
});
