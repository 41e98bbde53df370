// The TCP dialer survives aborted dials: @libp2p/tcp's own _connect lets net.connect emit an
// AbortError after it removed its error listener, an uncaught exception that killed agents.
import { expect, test } from "bun:test";
import net from "node:net";
import { defaultLogger } from "@libp2p/logger";
import { multiaddr } from "@multiformats/multiaddr";
import { safeTcp } from "../../src/tunnel/tcp-dial.ts";

// bun test catches uncaught exceptions itself (and fails the run), so the dials run in a child
// process that counts them with process.on("uncaughtException") and prints what happened.
const script = (factory: string) => `
  import net from "node:net";
  import { defaultLogger } from "@libp2p/logger";
  import { tcp } from "@libp2p/tcp";
  import { multiaddr } from "@multiformats/multiaddr";
  import { safeTcp } from "./src/tunnel/tcp-dial.ts";
  const uncaught = [];
  process.on("uncaughtException", (e) => uncaught.push(e.name));
  const server = net.createServer((s) => s.on("error", () => {}).end());
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const ma = multiaddr("/ip4/127.0.0.1/tcp/" + server.address().port);
  const transport = ${factory}({ logger: defaultLogger() });
  const upgrader = { upgradeOutbound: async (conn) => conn };
  const names = [];
  for (let i = 0; i < 3; i++) {
    const ac = new AbortController();
    const dial = transport.dial(ma, { signal: ac.signal, upgrader });
    ac.abort(); // net.connect has started; the connect completes on a later tick
    names.push(await dial.then(() => "connected", (e) => e.name));
  }
  await Bun.sleep(100); // net emits its AbortError on the next ticks
  server.close();
  console.log(JSON.stringify({ names, uncaught }));
  process.exit(0);
`;

async function abortedDials(factory: string): Promise<{ names: string[]; uncaught: string[] }> {
  const child = Bun.spawn([process.execPath, "-e", script(factory)], { cwd: `${import.meta.dir}/../..`, stdout: "pipe", stderr: "pipe", timeout: 15_000 });
  const [out, errText] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  if (!out.includes("names")) throw new Error(`child failed: ${errText.slice(0, 2000)}`);
  expect(await child.exited).toBe(0);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

test("library check: @libp2p/tcp's own dialer still raises an uncaught AbortError (else drop the fix)", async () => {
  const r = await abortedDials("tcp()");
  expect(r.names).toEqual(["AbortError", "AbortError", "AbortError"]);
  expect(r.uncaught).toEqual(["AbortError", "AbortError", "AbortError"]);
}, 20_000);

test("safeTcp: aborted dials reject with AbortError and nothing escapes", async () => {
  const r = await abortedDials("safeTcp()");
  expect(r.names).toEqual(["AbortError", "AbortError", "AbortError"]);
  expect(r.uncaught).toEqual([]);
}, 20_000);

// The upgrader is the libp2p step after the socket connects; here it just hands the conn back.
const upgrader = { upgradeOutbound: async (conn: unknown) => conn };

test("safeTcp: a normal dial connects; a refused one rejects with the address in the message", async () => {
  const server = net.createServer((s) => s.on("error", () => {}).end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const t: any = safeTcp()({ logger: defaultLogger() } as never);
    const conn = await t.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}`), { signal: AbortSignal.timeout(5000), upgrader });
    expect(String(conn.remoteAddr)).toBe(`/ip4/127.0.0.1/tcp/${port}`);
    conn.abort(new Error("done"));
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const freePort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await t.dial(multiaddr(`/ip4/127.0.0.1/tcp/${freePort}`), { signal: AbortSignal.timeout(5000), upgrader }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(`127.0.0.1:${freePort}`);
  } finally {
    server.close();
  }
});
