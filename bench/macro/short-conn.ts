// Short-connection latency, curl-like: per iteration connect, send one HTTP/1.1 POST with a 1 KiB
// body and "Connection: close", read the whole response (by its Content-Length), close. One
// connection at a time, so the p50 is the cost of a fresh connection plus one round trip through
// whatever is in between (the proxy, the tunnel's stream open). Prints {"p50_ms","p99_ms","rate"}.
//
//   bun bench/macro/short-conn.ts --port P --seconds S

import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string" }, seconds: { type: "string", default: "3" }, max: { type: "string", default: "20000" } } });
const port = Number(values.port);
const deadline = performance.now() + Number(values.seconds) * 1000;
const maxIterations = Number(values.max); // bounded in count as well as in time

const body = "a".repeat(1024);
const request = new TextEncoder().encode(`POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);

/** One connect + request + full response + close; resolves with milliseconds, rejects on error. */
function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = 0;
    let need = -1; // total response bytes once the header is parsed
    let head = "";
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(performance.now() - t0);
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write(request);
        },
        data(s, chunk) {
          got += chunk.length;
          if (need < 0) {
            head += new TextDecoder().decode(chunk);
            const end = head.indexOf("\r\n\r\n");
            if (end >= 0) {
              const m = head.slice(0, end).match(/content-length:\s*(\d+)/i);
              need = end + 4 + (m ? Number(m[1]) : 0);
            }
          }
          if (need >= 0 && got >= need) {
            s.end();
            done();
          }
        },
        close() {
          done(need >= 0 && got >= need ? undefined : new Error(`closed after ${got} bytes`));
        },
        error(_s, err) {
          done(err);
        },
        connectError(_s, err) {
          done(err);
        },
      },
    }).catch((err) => done(err as Error));
  });
}

const times: number[] = [];
let errors = 0;
const start = performance.now();
while (performance.now() < deadline && times.length + errors < maxIterations) {
  try {
    times.push(await once());
  } catch {
    errors++;
  }
}
const elapsed = (performance.now() - start) / 1000;
times.sort((a, b) => a - b);
const q = (p: number) => (times.length > 0 ? times[Math.min(times.length - 1, Math.floor(p * times.length))]! : NaN);
console.log(JSON.stringify({ p50_ms: q(0.5), p99_ms: q(0.99), rate: times.length / elapsed, count: times.length, errors }));
process.exit(0);
