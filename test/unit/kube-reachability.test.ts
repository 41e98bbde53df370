// The API reachability probe and the informer's wait for it, on the manual clock: simulated
// outages of any length, no sleeping. Issue 11 §2: a live change is followed within 2 s of the
// API's return, whatever the outage length, without hammering the API while it is down.

import { afterEach, describe, expect, test } from "bun:test";
import { createManualClock, type ManualClock } from "../../src/control/clock.ts";
import type { KubeFetch } from "../../src/control/kube/fetch-tls.ts";
import { createInformer, type Informer } from "../../src/control/kube/informers.ts";
import { createReachability, versionProbe, type Reachability } from "../../src/control/kube/reachability.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

/** Let promise chains and stream reads run (the manual clock fires timers synchronously). */
async function flush(): Promise<void> {
  for (let i = 0; i < 6; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Advance simulated time in steps, flushing in between, until `cond` or `ms` elapse. */
async function advanceUntil(clock: ManualClock, ms: number, cond: () => boolean = () => false, step = 50): Promise<number> {
  const start = clock.now();
  while (clock.now() - start < ms) {
    if (cond()) break;
    clock.advance(step);
    await flush();
  }
  return clock.now() - start;
}

const refused = () => Object.assign(new TypeError("Unable to connect. Is the computer able to access the url?"), { code: "ConnectionRefused" });

let stops: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function probeHarness(answers: ("answer" | "refused" | "hang" | 503)[]) {
  const clock = createManualClock(1_000_000);
  const metrics = createMetrics();
  const probes: number[] = [];
  let i = 0;
  const reach = createReachability({
    clock,
    metrics,
    log: createMemoryLogger(),
    random: () => 1, // no jitter: probes exactly every interval
    probe: (signal) => {
      probes.push(clock.now());
      const a = answers[Math.min(i++, answers.length - 1)]!;
      if (a === "answer") return Promise.resolve(true);
      if (a === 503) return Promise.resolve(false);
      if (a === "refused") return Promise.reject(refused());
      return new Promise<boolean>((_, reject) => signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
    },
  });
  stops.push(() => reach.stop());
  let returned = 0;
  reach.onReturn(() => returned++);
  return { clock, metrics, reach, probes, returned: () => returned };
}

describe("API reachability probe", () => {
  test("nothing is probed until a request goes unanswered; then one probe a second until the first answer, which wakes the waiters once", async () => {
    const h = probeHarness(["refused", "refused", "refused", "answer"]);
    await advanceUntil(h.clock, 10_000);
    expect(h.probes).toHaveLength(0);
    const t0 = h.clock.now();
    h.reach.unreachable();
    h.reach.unreachable(); // a second informer failing changes nothing
    expect(h.reach.down).toBe(true);
    await advanceUntil(h.clock, 10_000, undefined, 10);
    expect(h.probes.map((t) => t - t0)).toEqual([1000, 2000, 3000, 4000]);
    expect(h.returned()).toBe(1);
    expect(h.reach.down).toBe(false);
    expect(h.reach.returns).toBe(1);
    const snap = h.metrics.snapshot();
    expect(snap.kube_api_probes_total).toBe(4);
    expect(snap.kube_api_returns_total).toBe(1);
    expect(snap.kube_api_unreachable).toBe(0);
  });

  test("a probe that gets no answer is given up after its timeout and counts as a miss", async () => {
    const h = probeHarness(["hang", "answer"]);
    const t0 = h.clock.now();
    h.reach.unreachable();
    await advanceUntil(h.clock, 10_000, () => h.returned() > 0, 10);
    // 1 s to the first probe, 2.5 s timeout, 1 s to the next one, which answers.
    expect(h.probes.map((t) => t - t0)).toEqual([1000, 4500]);
    expect(h.returned()).toBe(1);
  });

  test("a 5xx (a gateway saying the API is not there) is a miss", async () => {
    const h = probeHarness([503, 503, "answer"]);
    h.reach.unreachable();
    await advanceUntil(h.clock, 10_000, () => h.returned() > 0, 10);
    expect(h.probes).toHaveLength(3);
  });

  test("an API that goes away again within seconds of each return is probed ever less often, and two calm minutes reset that", async () => {
    const h = probeHarness(["answer"]);
    const gaps: number[] = [];
    for (let flap = 0; flap < 6; flap++) {
      const t0 = h.clock.now();
      h.reach.unreachable();
      await advanceUntil(h.clock, 60_000, () => !h.reach.down, 10);
      gaps.push(h.probes.at(-1)! - t0);
      h.clock.advance(1000); // unreachable again a second after the return
    }
    expect(gaps).toEqual([1000, 2000, 4000, 8000, 16_000, 16_000]);
    h.clock.advance(120_000);
    const t0 = h.clock.now();
    h.reach.unreachable();
    await advanceUntil(h.clock, 60_000, () => !h.reach.down, 10);
    expect(h.probes.at(-1)! - t0).toBe(1000);
  });

  test("the version probe counts any status below 500 as an answer, reads no body, and passes the abort signal", async () => {
    const seen: { path: string; signal?: AbortSignal }[] = [];
    let status = 404;
    const f: KubeFetch = {
      server: "http://x",
      async request(path, init) {
        seen.push({ path, signal: init?.signal });
        return new Response("{}", { status });
      },
      close() {},
    };
    const probe = versionProbe(f);
    const ctl = new AbortController();
    expect(await probe(ctl.signal)).toBe(true);
    expect(seen[0]).toEqual({ path: "/version", signal: ctl.signal });
    for (const [s, want] of [[200, true], [401, true], [403, true], [500, false], [502, false], [503, false]] as const) {
      status = s;
      expect(await probe(ctl.signal)).toBe(want);
    }
  });
});

/**
 * A scripted API on the manual clock: a list, watches that stay open until the API goes down,
 * refused connections while it is down, and one change made during the outage.
 */
function scriptedApi(clock: ManualClock) {
  let up = true;
  let rv = 10;
  const requests: { at: number; path: string; up: boolean }[] = [];
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const pending: string[] = [];
  const line = (type: string, name: string, ip: string) =>
    JSON.stringify({ type, object: { metadata: { name, namespace: "d", resourceVersion: String(++rv) }, spec: { clusterIP: ip } } }) + "\n";
  const f: KubeFetch = {
    server: "http://scripted",
    async request(path, init) {
      requests.push({ at: clock.now(), path, up });
      if (!up) throw refused();
      if (path === "/version") return Response.json({ major: "1", minor: "30" });
      const q = new URL("http://x" + path).searchParams;
      if (q.get("watch") !== "true") return Response.json({ metadata: { resourceVersion: String(rv) }, items: [{ metadata: { name: "web", namespace: "d", resourceVersion: "10" }, spec: { clusterIP: "10.96.0.10" } }] });
      const from = Number(q.get("resourceVersion"));
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (const l of pending) if (Number(JSON.parse(l).object.metadata.resourceVersion) > from) c.enqueue(new TextEncoder().encode(l));
          open.add(c);
          init?.signal?.addEventListener("abort", () => {
            open.delete(c);
            c.error(new DOMException("aborted", "AbortError"));
          });
        },
      });
      return new Response(body, { status: 200 });
    },
    close() {},
  };
  return {
    f,
    requests,
    down() {
      up = false;
      for (const c of open) c.error(Object.assign(new Error("The socket connection was closed unexpectedly"), { code: "ECONNRESET" }));
      open.clear();
    },
    change(ip: string) {
      pending.push(line("MODIFIED", "web", ip));
    },
    up() {
      up = true;
    },
  };
}

describe("informer after an API outage (manual clock)", () => {
  const informers: Informer[] = [];
  afterEach(async () => {
    for (const i of informers.splice(0)) await i.stop();
  });

  for (const outageS of [2, 15, 60, 600]) {
    test(`a change made during a ${outageS} s outage is followed within 2 s of the API's return, with about one request a second while it is down`, async () => {
      const clock = createManualClock(1_000_000);
      const api = scriptedApi(clock);
      const metrics = createMetrics();
      const log = createMemoryLogger();
      const reach: Reachability = createReachability({ clock, metrics, log, probe: versionProbe(api.f), random: Math.random });
      stops.push(() => reach.stop());
      let clusterIP = "";
      const informer = createInformer({
        resource: { kind: "Service", path: "/api/v1/services", apiVersion: "v1" },
        fetch: api.f,
        handlers: {
          onList: (items: KubeObject[]) => (clusterIP = items[0]?.spec?.clusterIP ?? ""),
          onEvent: (_t, obj) => (clusterIP = obj.spec?.clusterIP ?? ""),
        },
        log, metrics, clock, random: Math.random, reachability: reach,
      });
      informers.push(informer);
      informer.start();
      await advanceUntil(clock, 1000, () => clusterIP !== "");
      expect(clusterIP).toBe("10.96.0.10");

      api.down();
      api.change("10.96.0.99");
      const downAt = clock.now();
      await advanceUntil(clock, outageS * 1000, undefined, outageS > 60 ? 250 : 50);
      expect(clusterIP).toBe("10.96.0.10");
      const whileDown = api.requests.filter((r) => !r.up && r.at >= downAt).length;
      api.up();
      const followMs = await advanceUntil(clock, 60_000, () => clusterIP === "10.96.0.99", 10);
      console.log(`informer (manual clock): ${outageS} s outage, followed ${followMs} ms after the return, ${whileDown} requests while down`);
      expect(clusterIP).toBe("10.96.0.99");
      expect(followMs).toBeLessThanOrEqual(2000);
      // One probe every 0.75-1 s plus the informer's own rare fallback retries (every 15-30 s).
      expect(whileDown).toBeLessThanOrEqual(2 + outageS * 1.5);
      expect(whileDown).toBeGreaterThanOrEqual(outageS * 0.9); // it did keep looking
    }, 30_000);
  }
});
