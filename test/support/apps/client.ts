// A bounded HTTP load client for the test bed: every request on a new TCP connection (so each one
// is load-balanced on its own), raw HTTP/1.0, tallied by response body (the test apps answer with
// their name). Prints one JSON line: { ok, failed, byBody, errors, ms }.
// Usage: bun client.ts --host H --port P [--path /] [--count N] [--concurrency C] [--rate R]
//        [--header "Name: value"] [--timeout MS]
// SIGTERM ends the run early and still prints the JSON line.

import { parseArgs } from "node:util";
import { http10Get } from "./http10.ts";

const { values: a } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string", default: "80" },
    path: { type: "string", default: "/" },
    count: { type: "string", default: "1" },
    concurrency: { type: "string", default: "1" },
    rate: { type: "string", default: "0" },
    header: { type: "string", multiple: true, default: [] },
    timeout: { type: "string", default: "3000" },
  },
});
const host = a.host!;
const port = Number(a.port);
const count = Math.min(Number(a.count), 1_000_000);
const concurrency = Math.max(1, Number(a.concurrency));
const rate = Number(a.rate);
const timeoutMs = Number(a.timeout);
const request = `GET ${a.path} HTTP/1.0\r\nHost: ${host}\r\n${a.header!.map((h) => h + "\r\n").join("")}\r\n`;

const once = () => http10Get(host, port, request, timeoutMs);

const byBody: Record<string, number> = {};
const errors: string[] = [];
let ok = 0;
let failed = 0;
let next = 0;
const started = performance.now();

async function worker(): Promise<void> {
  while (next < count) {
    const i = next++;
    if (rate > 0) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
    }
    try {
      const body = await once();
      byBody[body] = (byBody[body] ?? 0) + 1;
      ok++;
    } catch (err) {
      failed++;
      if (errors.length < 10) errors.push(`#${i} ${(err as Error).message}`);
    }
  }
}

const report = () => console.log(JSON.stringify({ ok, failed, byBody, errors, ms: Math.round(performance.now() - started) }));
// A paced run (--rate) can be ended early with SIGTERM: it reports what it did so far.
process.on("SIGTERM", () => {
  report();
  process.exit(0);
});
await Promise.all(Array.from({ length: concurrency }, worker));
report();
