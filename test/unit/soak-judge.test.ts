// The soak test's judgement (bench/soak/judge.ts): a wrong verdict would pass a leak or blame a
// fault for a bug, so its rules are pinned here.
import { describe, expect, test } from "bun:test";
import { drained, explain, flat, type Failure, type FaultWindow } from "../../bench/soak/judge.ts";

describe("soak judgement", () => {
  const cut: FaultWindow = { what: "link cut", start: 10_000, end: 15_000, explains: ["http", "udp"] };

  test("a failure is explained only by a fault of its kind, from a timeout before it to the grace after it", () => {
    const fails: Failure[] = [
      [7_000, "http", "started 3 s before the cut, still waiting"],
      [6_999, "http", "ended before the cut"],
      [12_000, "udp", "during"],
      [20_000, "http", "within the grace"],
      [20_001, "http", "after the grace"],
      [12_000, "dns", "a kind the cut does not explain"],
    ];
    const { explained, unexplained } = explain(fails, [cut], 3000, 5000);
    expect(explained.map((f) => f[2])).toEqual(["started 3 s before the cut, still waiting", "during", "within the grace"]);
    expect(unexplained.map((f) => f[2])).toEqual(["ended before the cut", "after the grace", "a kind the cut does not explain"]);
  });

  test("after the load, connections, flows and TCP streams must be back to idle; one UDP stream per peer may stay", () => {
    const idle = { fds: 24, tcpActive: 0, udpFlows: 0, tcpStreams: 0, udpStreams: 0 };
    expect(drained(idle, { ...idle, fds: 26, udpStreams: 1 }, 1)).toEqual([]);
    expect(drained(idle, { ...idle, udpStreams: 2 }, 1)).toHaveLength(1);
    expect(drained(idle, { ...idle, tcpStreams: 1 }, 1)[0]).toContain("TCP proxy streams 1");
    expect(drained(idle, { ...idle, tcpActive: 3, udpFlows: 2, fds: 40 }, 1)).toHaveLength(3);
  });

  test("flat: a warm-up rise and a plateau pass, a steady climb fails, too few samples say nothing", () => {
    expect(flat([60, 90, 100, 104, 101, 103, 102, 104, 103, 104], 1.1, 0)?.ok).toBe(true);
    const leak = flat([60, 90, 100, 110, 120, 130, 140, 150, 160, 170], 1.1, 0);
    expect(leak).toEqual({ ok: false, firstMax: 130, secondMax: 170 });
    expect(flat([1, 2, 3, 4], 1.1, 0)).toBeUndefined();
  });
});
