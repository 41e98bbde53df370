// Load side of the heap benchmark (its own process, so its allocations are not counted in the
// proxy's heap): a TCP echo server (the proxy's backend) and a pusher that, on command, sends N
// bytes through the proxy and waits until all N came back. stdin commands, JSON answers:
//   connect PORT   -> {"ok":true}
//   push BYTES     -> {"done":BYTES,"ms":...}
//   pingpong N     -> N round trips of 1 KiB each way, one at a time -> {"done":N,"ms":...}
// Prints {"port"} (the echo server) first.

import type { Socket } from "bun";

const CHUNK = new Uint8Array(64 * 1024).fill(0x63);

interface Echo {
  pending: Uint8Array | null;
}

const echo = Bun.listen<Echo>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(s) {
      s.data = { pending: null };
    },
    data(s, buf) {
      if (s.data.pending) {
        const joined = new Uint8Array(s.data.pending.byteLength + buf.byteLength);
        joined.set(s.data.pending);
        joined.set(buf, s.data.pending.byteLength);
        s.data.pending = joined;
        return;
      }
      const n = s.write(buf);
      if (n < buf.byteLength) {
        s.data.pending = buf.slice(n);
        s.pause();
      }
    },
    drain(s) {
      const p = s.data.pending;
      if (!p) return;
      const n = s.write(p);
      if (n < p.byteLength) s.data.pending = p.slice(n);
      else {
        s.data.pending = null;
        s.resume();
      }
    },
    error() {},
  },
});
console.log(JSON.stringify({ port: echo.port }));

let client: Socket | null = null;
let toSend = 0;
let toReceive = 0;
let started = 0;
let onDone: (() => void) | null = null;
const SMALL = new Uint8Array(1024).fill(0x64);
let roundTrips = 0;

function pump(s: Socket): void {
  while (toSend > 0) {
    const len = Math.min(CHUNK.byteLength, toSend);
    const n = s.write(CHUNK, 0, len);
    if (n > 0) toSend -= n;
    if (n < len) return; // short write: drain() continues
  }
}

async function connect(port: number): Promise<void> {
  client = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(s, buf) {
        toReceive -= buf.byteLength;
        if (toReceive <= 0 && roundTrips > 1) {
          roundTrips--;
          toReceive = SMALL.byteLength;
          s.write(SMALL);
          return;
        }
        if (toReceive <= 0 && onDone) {
          const done = onDone;
          onDone = null;
          done();
        }
      },
      drain(s) {
        pump(s);
      },
      error() {},
      close() {
        client = null;
      },
    },
  });
}

function push(bytes: number): Promise<void> {
  if (!client) throw new Error("push before connect");
  toSend = bytes;
  toReceive = bytes;
  started = performance.now();
  const done = new Promise<void>((resolve) => (onDone = resolve));
  pump(client);
  return done;
}

function pingpong(n: number): Promise<void> {
  if (!client) throw new Error("pingpong before connect");
  roundTrips = n;
  toReceive = SMALL.byteLength;
  started = performance.now();
  const done = new Promise<void>((resolve) => (onDone = resolve));
  client.write(SMALL);
  return done;
}

const decoder = new TextDecoder();
let partial = "";
for await (const chunk of Bun.stdin.stream()) {
  partial += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = partial.indexOf("\n")) >= 0) {
    const [cmd, arg] = partial.slice(0, nl).trim().split(" ");
    partial = partial.slice(nl + 1);
    try {
      if (cmd === "connect") {
        await connect(Number(arg));
        console.log(JSON.stringify({ ok: true }));
      } else if (cmd === "push") {
        await push(Number(arg));
        console.log(JSON.stringify({ done: Number(arg), ms: performance.now() - started }));
      } else if (cmd === "pingpong") {
        await pingpong(Number(arg));
        console.log(JSON.stringify({ done: Number(arg), ms: performance.now() - started }));
      } else console.log(JSON.stringify({ error: `unknown command ${cmd}` }));
    } catch (err) {
      console.log(JSON.stringify({ error: String(err) }));
    }
  }
}
(client as Socket | null)?.end();
echo.stop(true);
process.exit(0);
