// Host set-up used by agent mode next to iptables: root check and descriptor limit. (The bridge
// device is tested for real inside a namespace in test/integration/iptables.test.ts.)
import { describe, expect, test } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import { HostError, raiseNofileLimit, requireRoot } from "../../src/host/index.ts";

function procLimits(): { soft: number; hard: number } {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))!;
  const [soft, hard] = line.replace("Max open files", "").trim().split(/\s+/).map(Number);
  return { soft: soft!, hard: hard! };
}

describe("host", () => {
  test("requireRoot accepts uid 0 and names the command and the way out otherwise", () => {
    expect(() => requireRoot("edgemesh agent", 0)).not.toThrow();
    let err: unknown;
    try {
      requireRoot("edgemesh agent", 1000);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostError);
    expect(String((err as Error).message)).toContain("edgemesh agent needs root");
    expect(String((err as Error).message)).toContain("edgemesh dev");
  });

  test("raiseNofileLimit reports the limits the kernel actually holds, soft raised to hard", () => {
    const limits = raiseNofileLimit();
    const now = procLimits();
    expect(limits.error).toBeUndefined();
    expect(limits.soft).toBe(now.soft);
    expect(limits.hard).toBe(now.hard);
    expect(limits.soft).toBe(limits.hard);
  });

  test("a lowered soft limit (this process only) is raised back to the hard limit", () => {
    const { hard } = procLimits();
    const libc = dlopen("libc.so.6", { setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
    expect(libc.symbols.setrlimit(7, new BigUint64Array([512n, BigInt(hard)]))).toBe(0);
    expect(procLimits().soft).toBe(512);
    const limits = raiseNofileLimit();
    expect(limits.before).toBe(512);
    expect(limits.soft).toBe(hard);
    expect(procLimits().soft).toBe(hard);
    libc.close();
  });

  test("raiseNofileLimit never lowers the limit and does not fail when asked for more than hard", () => {
    const before = procLimits();
    const low = raiseNofileLimit(16);
    expect(low.soft).toBe(before.soft);
    const high = raiseNofileLimit(64_000);
    expect(high.soft).toBeLessThanOrEqual(high.hard);
    expect(high.soft).toBe(procLimits().soft);
  });
});
