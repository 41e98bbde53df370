// What loading the data plane loads. The proxy runs without a tunnel in dev mode and in the
// benchmark gate's proxy process (rss.idle); the tunnel's index pulls in libp2p, Noise and yamux,
// ~30 MiB of RSS in a process that never opens a libp2p connection. On 2026-12-04 one value
// import from src/tunnel/index.ts in src/hotpath/remote took the bench proxy's idle RSS from 34.5
// to 64 MiB. Values the hot path needs from src/tunnel come from its leaf modules.

import { describe, expect, test } from "bun:test";

const root = new URL("../../", import.meta.url).pathname;

async function inputsOf(entry: string): Promise<string[]> {
  const build = await Bun.build({ entrypoints: [root + entry], target: "bun", metafile: true } as Parameters<typeof Bun.build>[0]);
  expect(build.success).toBe(true);
  const meta = (build as unknown as { metafile: { inputs: Record<string, unknown> } }).metafile;
  return Object.keys(meta.inputs);
}

/** Modules that only a running tunnel needs. */
const TUNNEL_ONLY = [/(^|\/)src\/tunnel\/index\.ts$/, /(^|\/)src\/tunnel\/tunnel\.ts$/, /node_modules\/libp2p\//, /node_modules\/@chainsafe\//, /node_modules\/@libp2p\//];

describe("the data plane's imports", () => {
  for (const entry of ["src/hotpath/index.ts", "bench/macro/proxy-server.ts"]) {
    test(`${entry} loads nothing only the tunnel needs`, async () => {
      const inputs = await inputsOf(entry);
      // The graph is real: the proxy itself is in it.
      expect(inputs.some((p) => p.endsWith("src/hotpath/proxy.ts"))).toBe(true);
      expect(inputs.filter((p) => TUNNEL_ONLY.some((re) => re.test(p)))).toEqual([]);
    });
  }

  test("the check sees a tunnel import when there is one", async () => {
    const inputs = await inputsOf("src/tunnel/index.ts");
    expect(inputs.filter((p) => TUNNEL_ONLY.some((re) => re.test(p))).length).toBeGreaterThan(10);
  });
});
