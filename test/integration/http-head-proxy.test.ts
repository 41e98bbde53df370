// The HTTP head reader through the real proxy (CONSISTENT_HASH_HEADER, real sockets): a head
// dribbled a byte per packet lands on the same endpoint as the same head sent at once, and the
// endpoint gets every byte; malformed heads (garbage, no end before FIN, past the 32 KiB limit,
// bare CRs, NULs) are forwarded or closed without taking the proxy down, and nothing is left
// open afterwards.

import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { echoServer, openFds, runCleanups, settledFds, startProxy, until } from "./proxy-support.ts";

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

/** Sends `head` in pieces (a write per piece, each after the previous left), returns all echoed. */
async function send(port: number, pieces: Uint8Array[], fin = true): Promise<string> {
  let text = "";
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      data(_s, b) {
        text += Buffer.from(b).toString("latin1");
      },
      close() {
        done();
      },
      connectError() {
        done();
      },
      error() {},
    },
  });
  socket.setNoDelay(true);
  for (const p of pieces) {
    socket.write(p);
    await Bun.sleep(0);
  }
  if (fin) socket.shutdown();
  await Promise.race([closed, Bun.sleep(8000)]);
  socket.end();
  return text;
}

const bytes = (t: string) => new Uint8Array(Buffer.from(t, "latin1"));
const split = (b: Uint8Array, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, i * n + n));

describe("HTTP head reader through the proxy", () => {
  test("a head dribbled a byte per packet is hashed like the same head sent at once, and replayed intact", async () => {
    const servers = ["e0", "e1", "e2", "e3"].map((t) => echoServer(t));
    for (const s of servers) cleanups.push(() => s.stop(true));
    const h = startProxy([{ name: "hh", policy: { kind: "CONSISTENT_HASH_HEADER", header: "x-user" }, endpoints: servers.map((s) => ({ port: s.port })) }]);
    cleanups.push(() => h.proxy.stop());
    const { port } = await h.addr("hh");
    for (const user of ["alice", "bob", "carol", "dave", "erin"]) {
      const head = `GET / HTTP/1.1\r\nHost: web\r\n${"X-Pad: " + "p".repeat(300) + "\r\n"}X-User: ${user}\r\n\r\nbody-${user}`;
      const once = await send(port, [bytes(head)]);
      const dribbled = await send(port, split(bytes(head), 1));
      const odd = await send(port, split(bytes(head), 7));
      // The echo server answers with its tag, then echoes: same endpoint, every byte replayed.
      expect(once.slice(2)).toBe(head);
      expect(dribbled).toBe(once);
      expect(odd).toBe(once);
    }
  }, 60_000);

  test("malformed heads are forwarded or closed, never take the proxy down, and leave nothing open", async () => {
    const server = echoServer("E");
    cleanups.push(() => server.stop(true));
    const h = startProxy([{ name: "hh", policy: { kind: "CONSISTENT_HASH_HEADER", header: "x-user" }, endpoints: [{ port: server.port }] }]);
    cleanups.push(() => h.proxy.stop());
    const { port } = await h.addr("hh");
    const fdsBefore = await settledFds();
    const garbage = new Uint8Array(5000).map((_, i) => (i * 7919) & 0xff);
    const cases: [string, Uint8Array[], boolean][] = [
      ["random bytes", [garbage], true],
      ["no head end, then FIN", [bytes("GET / HTTP/1.1\r\nX-User: a\r\n")], true],
      ["40 KiB of header lines (past the 32 KiB limit), dribbled", split(bytes("GET / HTTP/1.1\r\n" + "X-A: b\r\n".repeat(5000)), 512), true],
      ["bare CRs and NULs", [bytes("GET / HTTP/1.1\r\nX-User: a\rb\0c\r\n\r\n")], true],
      ["a lone LF head", [bytes("\n\n")], true],
      ["nothing at all", [], true],
    ];
    for (const [what, pieces, fin] of cases) {
      const got = await send(port, pieces, fin);
      const sent = Buffer.concat(pieces.map((p) => Buffer.from(p))).toString("latin1");
      // Forwarded whole to the one endpoint (the head is only read, never changed).
      if (got !== "E" + sent) throw new Error(`${what}: got ${JSON.stringify(got.slice(0, 80))}`);
    }
    // A client that sends half a head and stalls is still served once the head timeout passes.
    const stalled = await send(port, [bytes("GET / HTTP/1.1\r\nX-Us")], false);
    expect(stalled).toBe("EGET / HTTP/1.1\r\nX-Us");
    await until(() => h.proxy.stats().activeTcp === 0, 10_000, "every connection closed");
    expect(await settledFds()).toBeLessThanOrEqual(fdsBefore + 2);
    expect(openFds()).toBeGreaterThan(0);
  }, 60_000);
});
