// Issue 11 §2: after an API outage the source follows the API again within 2 s of its return,
// whatever the outage length, with kubeAPIConfig.master (manual mode) and with the MetaServer
// (edge mode), and without hammering the API while it is down. Real time, real sockets, the
// stand-in apiserver going down and coming back on the same port; the source runs with its
// production tunables (no shortened backoff). Each mode and outage length runs three times, all
// eighteen side by side (~65 s in all): the old edge-mode backoff (capped at 5 s, jittered)
// followed within 2 s by luck about two times in five after a long outage, so one run each
// could pass on it; three of each 15 and 60 s outage all passing by luck is ~0.4^6.

import { afterAll, describe, expect, test } from "bun:test";
import { compile } from "../../src/control/compile/index.ts";
import { createKubeSource, type KubeSource } from "../../src/control/kube/index.ts";
import type { KubeMode } from "../../src/control/kube/index.ts";
import { createObjectStore, type ObjectStore } from "../../src/control/store.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { removeDir, tempDir, waitFor } from "../support/apiserver/harness.ts";

const FOLLOW_LIMIT_MS = 2000;
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.splice(0)) await c().catch(() => {});
});

/** The endpoint the data plane would use for default/web:80 from the store right now. */
function webEndpoint(store: ObjectStore): string | undefined {
  const port = compile(store.snapshot(), { serviceFilterMode: "FilterIfLabelExists" }, 1, Date.now()).byKey["default/web:80/TCP"];
  const e = port?.endpoints[0];
  return e && `${e.ip}:${e.port}`;
}

interface Run {
  mode: KubeMode;
  outageS: number;
  followMs: number;
  /** HTTP requests the source tried while the API was down (refused connections included). */
  attemptsWhileDown: number;
}

async function outage(mode: KubeMode, outageS: number): Promise<Run> {
  const api = await startStandInApiServer();
  api.add("Service", fx.service("default", "web", "10.96.0.10"));
  api.add("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.5"]));
  const store = createObjectStore();
  const stateDir = tempDir();
  let down = false;
  let attemptsWhileDown = 0;
  const source: KubeSource = createKubeSource({
    mode,
    server: api.url,
    store,
    stateDir,
    log: createMemoryLogger(),
    metrics: createMetrics(),
    // Counts every request the source makes (probes, lists, watches, discovery).
    fetch: (url, init) => {
      if (down) attemptsWhileDown++;
      return fetch(url, init as RequestInit);
    },
  });
  cleanup.push(async () => {
    await source.stop();
    await api.stop();
    removeDir(stateDir);
  });
  await source.start();
  expect(source.status().live).toBe(true);
  expect(webEndpoint(store)).toBe("10.244.0.5:8080");

  down = true;
  await api.down();
  // The endpoint moves while the API is away: the agent must pick it up once the API is back.
  api.update("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.9"]));
  await Bun.sleep(outageS * 1000);
  expect(webEndpoint(store)).toBe("10.244.0.5:8080");
  await api.up();
  down = false;
  const back = performance.now();
  // Polls every 5 ms for up to 35 s: today's backoff (up to 30 s) must show as a number.
  await waitFor(`${mode} mode follows the API after a ${outageS} s outage`, () => webEndpoint(store) === "10.244.0.9:8080", 35_000);
  return { mode, outageS, followMs: Math.round(performance.now() - back), attemptsWhileDown };
}

describe("kubernetes source after an API outage", () => {
  test("follows a change within 2 s of the API's return after outages of 2, 15 and 60 s, manual and edge mode, without hammering", async () => {
    const runs = await Promise.all((["manual", "edge"] as const).flatMap((mode) => [2, 15, 60].flatMap((s) => [0, 1, 2].map(() => outage(mode, s)))));
    for (const r of runs) {
      console.log(`kube follow: ${r.mode} mode, ${r.outageS} s outage: change followed ${r.followMs} ms after the API returned; ${r.attemptsWhileDown} requests while down (${(r.attemptsWhileDown / r.outageS).toFixed(2)}/s)`);
    }
    // Every mode and outage length that was slow, before any assertion stops the report.
    const slow = runs.filter((r) => r.followMs > FOLLOW_LIMIT_MS).map((r) => `${r.mode} ${r.outageS} s: ${r.followMs} ms`);
    expect(slow).toEqual([]);
    for (const r of runs) {
      expect(r.followMs).toBeLessThanOrEqual(FOLLOW_LIMIT_MS);
      // One cheap probe a second and the informers' own (backed-off) retries; a hot loop would
      // be hundreds a second. The first second holds every informer's first retries.
      if (r.outageS >= 15) expect(r.attemptsWhileDown / r.outageS).toBeLessThanOrEqual(3);
      else expect(r.attemptsWhileDown).toBeLessThanOrEqual(24);
    }
  }, 120_000);
});
