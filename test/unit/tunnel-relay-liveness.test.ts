// The relay liveness monitor's decisions on the manual clock, with stand-in connections: when a
// relay is declared silent, and when it must not be (late pongs on a lossy link, a relay busy
// with bulk data). Issue 11 §3: silent relay left within 5 s, no false failovers.

import { describe, expect, test } from "bun:test";
import { createManualClock } from "../../src/control/clock.ts";
import {
  createRelayLiveness,
  FLAP_WINDOW_MS,
  nextQuarantine,
  QUARANTINE_BASE_MS,
  QUARANTINE_MAX_MS,
  RELAY_PROBE_INTERVAL_MS,
  RELAY_PROBE_MISSES,
  type Probed,
  type SilentInfo,
} from "../../src/tunnel/relay-liveness.ts";

/** A stand-in relay connection: pongs after `rttMs` while `alive`, never while silent. */
function fakeConn(clock: ReturnType<typeof createManualClock>, id = "c1") {
  const c = {
    alive: true,
    rttMs: 2,
    /** Extra delay for the next pong only (a retransmitted segment). */
    delayNext: 0,
    rx: 0,
    pings: 0,
    failNext: false,
    probed: undefined as unknown as Probed,
  };
  c.probed = {
    id,
    relay: "relay1",
    received: () => c.rx,
    ping() {
      c.pings++;
      if (c.failNext) {
        c.failNext = false;
        return Promise.reject(new Error("muxer closed"));
      }
      if (!c.alive) return new Promise(() => {});
      const wait = c.rttMs + c.delayNext;
      c.delayNext = 0;
      return new Promise<void>((resolve) => clock.setTimeout(() => (c.alive ? resolve() : undefined), wait));
    },
  };
  return c;
}

function monitor(conns: () => Probed[]) {
  const clock = createManualClock(0);
  const silent: { id: string; info: SilentInfo; at: number }[] = [];
  const counters = { probes: { value: 0 }, misses: { value: 0 } };
  const live = createRelayLiveness({ clock, list: conns, onSilent: (p, info) => silent.push({ id: p.id, info, at: clock.now() }), counters });
  return { clock, live, silent, counters };
}

/** Advance in 1 ms steps' worth of timers, letting ping promises settle between intervals. */
async function run(clock: ReturnType<typeof createManualClock>, ms: number, step = 50): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await Promise.resolve();
    await Promise.resolve();
  }
}

describe("relay liveness monitor", () => {
  test("a relay answering every probe is never reported, and is probed once per interval", async () => {
    let c!: ReturnType<typeof fakeConn>;
    const h = monitor(() => [c.probed]);
    c = fakeConn(h.clock);
    h.live.start();
    await run(h.clock, 60_000);
    expect(h.silent).toEqual([]);
    expect(c.pings).toBe(Math.floor(60_000 / RELAY_PROBE_INTERVAL_MS));
    expect(h.counters.misses.value).toBe(0);
    h.live.stop();
  });

  test("a relay that goes silent is reported once, 3.2-3.6 s after its last pong, whatever the phase", async () => {
    const I = RELAY_PROBE_INTERVAL_MS;
    for (const phase of [0, Math.round(I * 0.13), Math.round(I * 0.53), I - 10]) {
      let c!: ReturnType<typeof fakeConn>;
      const h = monitor(() => (c.alive || h.silent.length === 0 ? [c.probed] : []));
      c = fakeConn(h.clock);
      h.live.start();
      await run(h.clock, 10_000 + phase, 10);
      c.alive = false;
      const cutAt = h.clock.now();
      await run(h.clock, 10_000, 10);
      expect(h.silent).toHaveLength(1);
      const detectedMs = h.silent[0]!.at - cutAt;
      expect(detectedMs).toBeGreaterThanOrEqual((RELAY_PROBE_MISSES - 1) * I);
      expect(detectedMs).toBeLessThanOrEqual((RELAY_PROBE_MISSES + 1) * I);
      expect(detectedMs).toBeLessThanOrEqual(3700); // the e2e test allows 5 s for the whole failover
      expect(h.silent[0]!.info.misses).toBe(RELAY_PROBE_MISSES);
      expect(h.silent[0]!.info.silentForMs).toBe(RELAY_PROBE_MISSES * I);
      expect(h.silent[0]!.info.silentForMs).toBeGreaterThan(3100); // over a four-loss TCP stall
      h.live.stop();
    }
  });

  test("late pongs on a lossy link (a retransmission of up to 1.4 s) are no failover", async () => {
    let c!: ReturnType<typeof fakeConn>;
    const h = monitor(() => [c.probed]);
    c = fakeConn(h.clock);
    h.live.start();
    for (let i = 0; i < 40; i++) {
      await run(h.clock, 3000, 10);
      c.delayNext = 200 + 400 + 800; // the same segment lost three times in a row (RTO 200 ms, doubling)
    }
    expect(h.silent).toEqual([]);
    expect(h.counters.misses.value).toBeGreaterThan(0); // the late pongs did show as misses
  });

  test("a pong late by four losses of one segment (a 3.0 s stall) is no failover, whatever the phase", async () => {
    for (const phase of [0, 90, 210, RELAY_PROBE_INTERVAL_MS - 10]) {
      let c!: ReturnType<typeof fakeConn>;
      const h = monitor(() => [c.probed]);
      c = fakeConn(h.clock);
      h.live.start();
      await run(h.clock, 2000 + phase, 10);
      for (let i = 0; i < 10; i++) {
        c.delayNext = 200 + 400 + 800 + 1600;
        await run(h.clock, 5000, 10);
      }
      expect(h.silent).toEqual([]);
      expect(h.counters.misses.value).toBeGreaterThan(0);
      h.live.stop();
    }
  });

  test("bytes arriving count as life: a relay whose pongs queue behind bulk data is not dropped", async () => {
    let c!: ReturnType<typeof fakeConn>;
    const h = monitor(() => [c.probed]);
    c = fakeConn(h.clock);
    c.rttMs = 10_000; // pong stuck behind 10 s of queued data
    h.live.start();
    for (let i = 0; i < 200; i++) {
      c.rx++; // data keeps arriving
      await run(h.clock, 100, 50);
    }
    expect(h.silent).toEqual([]);
    h.live.stop();
  });

  test("a ping that fails outright is a miss; connections that close are forgotten", async () => {
    let conns: ReturnType<typeof fakeConn>[] = [];
    const h = monitor(() => conns.map((c) => c.probed));
    const a = fakeConn(h.clock, "a");
    const b = fakeConn(h.clock, "b");
    conns = [a, b];
    h.live.start();
    await run(h.clock, 3000);
    a.alive = false;
    a.failNext = true;
    conns = [a]; // b closed
    await run(h.clock, 5000);
    expect(h.silent.map((s) => s.id)).toEqual(["a"]);
    b.alive = false; // b is gone: never reported
    await run(h.clock, 5000);
    expect(h.silent.map((s) => s.id)).toEqual(["a"]);
  });

  test("stop() ends the probing", async () => {
    let c!: ReturnType<typeof fakeConn>;
    const h = monitor(() => [c.probed]);
    c = fakeConn(h.clock);
    h.live.start();
    await run(h.clock, 2000);
    h.live.stop();
    const pings = c.pings;
    await run(h.clock, 10_000);
    expect(c.pings).toBe(pings);
    expect(h.clock.pending()).toBe(0);
  });
});

describe("relay quarantine after a silence", () => {
  test("starts at 2 s and doubles for each silence within the flap window, up to 60 s", () => {
    let prev: ReturnType<typeof nextQuarantine>["strikes"] | undefined;
    const got: number[] = [];
    for (let i = 0; i < 8; i++) {
      const q = nextQuarantine(prev, i * 60_000);
      got.push(q.ms);
      prev = q.strikes;
    }
    expect(got).toEqual([2000, 4000, 8000, 16_000, 32_000, QUARANTINE_MAX_MS, QUARANTINE_MAX_MS, QUARANTINE_MAX_MS]);
  });

  test("a relay that stayed well for the flap window starts again at the base", () => {
    const first = nextQuarantine(undefined, 0);
    const second = nextQuarantine(first.strikes, 1000);
    expect(second.ms).toBe(2 * QUARANTINE_BASE_MS);
    expect(nextQuarantine(second.strikes, 1000 + FLAP_WINDOW_MS).ms).toBe(QUARANTINE_BASE_MS);
  });
});
