// A steady HTTP load for fault tests, with a line per request so a test can see when traffic
// stopped and when it came back: one HTTP/1.0 GET on a new TCP connection every --every ms
// (each with its own --timeout), for --seconds at most. Prints per request
//   {"s":<start, epoch ms>,"e":<end, epoch ms>,"ok":true|false,"body":"...","err":"..."}
// and ends with {"done":true}. Bounded in count and time; stop it early with SIGTERM.
// Usage: bun ticker.ts --host H [--port 80] [--every 100] [--timeout 1000] [--seconds 30]

import { parseArgs } from "node:util";
import { http10Get } from "./http10.ts";

const { values: a } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string", default: "80" },
    every: { type: "string", default: "100" },
    timeout: { type: "string", default: "1000" },
    seconds: { type: "string", default: "30" },
  },
});
const host = a.host!;
const port = Number(a.port);
const everyMs = Math.max(10, Number(a.every));
const timeoutMs = Number(a.timeout);
const endAt = Date.now() + Math.min(Number(a.seconds), 600) * 1000;
const request = `GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`;

function once(): void {
  const s = Date.now();
  http10Get(host, port, request, timeoutMs).then(
    (body) => console.log(JSON.stringify({ s, e: Date.now(), ok: true, body: body.slice(0, 60) })),
    (err: Error) => console.log(JSON.stringify({ s, e: Date.now(), ok: false, err: err.message })),
  );
}

const tick = setInterval(() => {
  if (Date.now() >= endAt) {
    clearInterval(tick);
    setTimeout(() => {
      console.log(JSON.stringify({ done: true }));
      process.exit(0);
    }, timeoutMs + 100);
    return;
  }
  once();
}, everyMs);
process.on("SIGTERM", () => process.exit(0));
