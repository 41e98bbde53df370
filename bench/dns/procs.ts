// Processes for the DNS benchmark: our server, dnsmasq and dnsperf, each its own process so CPU
// per query is each one's own. Every process started here is killed by stopAll().
import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";

const live = new Set<Subprocess>();

export function spawn(cmd: string[]): Subprocess<"pipe", "pipe", "pipe"> {
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  live.add(proc);
  proc.exited.then(() => live.delete(proc));
  return proc;
}

export function stopAll(): void {
  for (const p of live) p.kill("SIGTERM");
  live.clear();
}

/** First line of stdout that parses as JSON (our server prints {"port":N} when ready). */
export async function firstJson<T>(proc: Subprocess<"pipe", "pipe", "pipe">, timeoutMs: number): Promise<T> {
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => null)]);
      if (chunk === null || chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      for (const line of text.split("\n")) if (line.startsWith("{")) return JSON.parse(line) as T;
    }
  } finally {
    reader.releaseLock();
  }
  throw new Error(`no JSON from ${proc.pid} within ${timeoutMs} ms: ${text}`);
}

/** utime + stime of a process in seconds (/proc/PID/stat, 100 ticks per second). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A port free for both UDP and TCP on 127.0.0.1 right now (dnsmasq needs a number). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    const port = udp.port;
    udp.close();
    try {
      Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
      return port;
    } catch {}
  }
  throw new Error("no free port for the DNS benchmark");
}

/** Wait until `dig` gets an answer from 127.0.0.1:port (dnsmasq has no ready signal). */
export async function waitForDns(port: number, name: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const p = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+short", "+tries=1", "+time=1", name], { stdout: "pipe" });
    const out = await new Response(p.stdout).text();
    if ((await p.exited) === 0 && out.trim() !== "") return;
    await Bun.sleep(50);
  }
  throw new Error(`no DNS answer for ${name} on port ${port}`);
}
