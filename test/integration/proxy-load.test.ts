import { afterAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { runCleanups } from "./proxy-support.ts";

// 5,000 concurrent connections through one service port. The proxy runs in its own process
// (as the agent does), so its descriptors are its own: 2 per proxied connection. Its cap is set
// below the offered load so that both outcomes, served and cleanly refused, are exercised.
const CLIENTS = 5000;
const CAP = 4500;
const BATCH = 250;

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

const child = (echoPort: number) => `
import { startProxy } from ${JSON.stringify(import.meta.dir + "/proxy-support.ts")};
import { createZeroCopyEngine } from ${JSON.stringify(import.meta.dir + "/../../src/hotpath/zerocopy/index.ts")};
import { createMemoryLogger } from ${JSON.stringify(import.meta.dir + "/../../src/log/index.ts")};
import { createMetrics } from ${JSON.stringify(import.meta.dir + "/../../src/metrics/index.ts")};
// With the zero-copy engine, as the agent runs (these small echoes never reach its threshold).
const zeroCopy = createZeroCopyEngine({ maxPairs: 64, log: createMemoryLogger(), metrics: createMetrics() });
const h = startProxy([{ name: "load", endpoints: [{ port: ${echoPort} }] }], { maxConnections: ${CAP}, zeroCopy });
const a = await h.addr("load");
console.log(JSON.stringify({ port: a.port }));
for await (const line of console) {
  if (line === "stats") console.log(JSON.stringify({ ...h.proxy.stats(), rss: process.memoryUsage().rss }));
}
`;

test(`${CLIENTS} concurrent connections are all served or cleanly refused, and the proxy lives on`, async () => {
  const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s, b) => void s.write(b) } });
  cleanups.push(() => echo.stop(true));
  const proc = Bun.spawn([process.execPath, "-e", child(echo.port)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  cleanups.push(() => proc.kill());
  const lines = (async function* () {
    let buf = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
      }
    }
  })();
  const next = async () => JSON.parse((await lines.next()).value as string);
  const { port } = await next();
  const stats = async () => {
    proc.stdin.write("stats\n");
    proc.stdin.flush();
    return next();
  };
  const idle = await stats();

  let served = 0;
  let refused = 0;
  const open: Socket<undefined>[] = [];
  const t0 = Date.now();
  for (let start = 0; start < CLIENTS; start += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, CLIENTS - start) }, async () => {
        let settle!: (ok: boolean) => void;
        const outcome = new Promise<boolean>((r) => (settle = r));
        const s = await Bun.connect({
          hostname: "127.0.0.1",
          port,
          socket: {
            open: (sock) => void sock.write("ping"),
            data: () => settle(true),
            close: () => settle(false),
            error: () => settle(false),
          },
        }).catch(() => null);
        if (s === null) return void refused++;
        if (await outcome) {
          served++;
          open.push(s);
        } else refused++;
      }),
    );
  }
  const loaded = await stats();
  const elapsed = Date.now() - t0;
  console.log(
    `served ${served}, refused ${refused} in ${elapsed} ms; proxy RSS idle ${(idle.rss / 2 ** 20).toFixed(1)} MiB, ` +
      `with ${loaded.activeTcp} open ${(loaded.rss / 2 ** 20).toFixed(1)} MiB`,
  );
  expect(served + refused).toBe(CLIENTS);
  expect(served).toBe(CAP);
  expect(loaded.activeTcp).toBe(CAP);
  expect(loaded.tcpRefused).toBe(CLIENTS - CAP);

  for (const s of open) s.end();
  const deadline = Date.now() + 10_000;
  let after = await stats();
  while (after.activeTcp > 0 && Date.now() < deadline) {
    await Bun.sleep(50);
    after = await stats();
  }
  expect(after.activeTcp).toBe(0);
  // Alive and serving after the storm.
  let reply = "";
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, b) => void (reply += b.toString()) } });
  s.write("still alive");
  for (let i = 0; i < 200 && reply !== "still alive"; i++) await Bun.sleep(5);
  s.end();
  expect(reply).toBe("still alive");
  expect(proc.exitCode).toBeNull();
}, 60_000);
