// The load generators of the macro benchmarks, each a bounded run in its own process:
// iperf3 (bulk), wrk (request rate), the Bun UDP client (packets/s). Each returns one number.

import { spawnBun, spawnChild } from "./procs.ts";

/** iperf3 client for `seconds` (+`omit` s, 1 by default, omitted for slow start); receiver-side Gbit/s. */
export async function iperf3(port: number, seconds: number, omit = 1): Promise<number> {
  const child = spawnChild(["iperf3", "-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-O", String(omit), "-J"]);
  const code = await child.exited((seconds + 15) * 1000);
  const text = child.stdoutText();
  let doc: any;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`iperf3 -p ${port}: exit ${code}, output not JSON: ${text.slice(0, 300)} ${child.stderrText().slice(0, 300)}`);
  }
  if (doc.error) throw new Error(`iperf3 -p ${port}: ${doc.error}`);
  const bps = doc?.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number" || bps <= 0) throw new Error(`iperf3 -p ${port}: no sum_received in its JSON`);
  return bps / 1e9;
}

/** wrk, 1 thread, `connections` connections, 1 KiB POST bodies; requests/s. */
export async function wrk(port: number, seconds: number, connections = 64): Promise<{ rps: number; errors: number }> {
  const script = new URL("./wrk-post-1k.lua", import.meta.url).pathname;
  const child = spawnChild([
    "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "2s", "-s", script, `http://127.0.0.1:${port}/`,
  ]);
  const code = await child.exited((seconds + 15) * 1000);
  const text = child.stdoutText();
  const m = text.match(/Requests\/sec:\s+([\d.]+)/);
  if (code !== 0 || !m) throw new Error(`wrk -> ${port}: exit ${code}: ${text.slice(-400)} ${child.stderrText().slice(-300)}`);
  const errors = [...text.matchAll(/(?:connect|read|write|timeout) (\d+)/g)].reduce((n, x) => n + Number(x[1]), 0) +
    Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  return { rps: Number(m[1]), errors };
}

/** 512-byte echo, 32 in flight, for `seconds`: replies/s and round-trip percentiles. */
export async function udpEchoDetail(port: number, seconds: number): Promise<{ pps: number; p50_ms: number; p99_ms: number; lost: number }> {
  const child = spawnBun("./udp-client.ts", ["--port", String(port), "--seconds", String(seconds), "--size", "512", "--inflight", "32"]);
  const out = await child.nextJson<{ pps: number; p50_ms: number; p99_ms: number; lost: number }>((seconds + 15) * 1000);
  await child.exited(5_000);
  if (!(out.pps > 0)) throw new Error(`udp client -> ${port}: no replies (${JSON.stringify(out)})`);
  return out;
}

/** Many short UDP flows (a socket, one datagram, its echo), `concurrency` at a time. */
export async function udpFlows(port: number, seconds: number, firstPort: number, concurrency = 64): Promise<{ flows_per_s: number; echoed: number; lost: number; p50_ms: number; p99_ms: number }> {
  const child = spawnBun("./udp-flows.ts", ["--port", String(port), "--seconds", String(seconds), "--concurrency", String(concurrency), "--first-port", String(firstPort)]);
  const out = await child.nextJson<{ flows_per_s: number; echoed: number; lost: number; p50_ms: number; p99_ms: number }>((seconds + 20) * 1000);
  await child.exited(5_000);
  return out;
}

/** 512-byte echo, 32 in flight, for `seconds`; replies/s. */
export async function udpEcho(port: number, seconds: number): Promise<number> {
  const child = spawnBun("./udp-client.ts", ["--port", String(port), "--seconds", String(seconds), "--size", "512", "--inflight", "32"]);
  const out = await child.nextJson<{ pps: number; received: number }>((seconds + 15) * 1000);
  await child.exited(5_000);
  if (!(out.pps > 0)) throw new Error(`udp client -> ${port}: no replies (${JSON.stringify(out)})`);
  return out.pps;
}
