// The macro benchmarks, each against its reference measured in the same run, repeats
// interleaved (direct, proxy, socat, direct, proxy, socat, ...) so that drifting background load
// hits ours and the reference alike. Every process is its own: backends, proxy, load generators.
//   tcp.bulk.*   iperf3 direct vs through our proxy vs through socat (256 KiB buffers)
//   http.rps.*   wrk, 64 connections, 1 KiB each way, direct vs through our proxy
//   with withRefs (full mode, --with-refs) HAProxy (mode tcp, nbthread 1) and nginx's stream
//   module (one process) as two more in-run references for both (refs.ts), interleaved with ours
//   udp.pps.*    512-byte echo, 32 in flight, direct vs through our proxy's UDP listener
//   rss.*        VmRSS of the proxy process idle, VmHWM after all of the above
//   heap.*       see heap.ts

import { existsSync } from "node:fs";
import { median, ratioResult, summarize, type Result } from "../gate/index.ts";
import { measureHeap } from "./heap.ts";
import { iperf3, udpEcho, wrk } from "./load.ts";
import { type Child, cpuSecondsOf, freePort, haveTool, memoryOf, spawnBun, spawnChild, waitTcp } from "./procs.ts";
import { type RefProxy, startReferences } from "./refs.ts";

export interface MacroOptions {
  seconds: number;
  repeats: number;
  heapBytes: number;
  /** Also measure the naive Bun forwarder (an extra reference row per benchmark). */
  withNaive: boolean;
  /** Also measure HAProxy and nginx stream (refs.ts) for bulk and request rate: 2 x 3 more runs each. */
  withRefs?: boolean;
  log: (line: string) => void;
}

const REF_NOTE: Record<RefProxy["name"], string> = {
  haproxy: "HAProxy mode tcp, one process, nbthread 1, default 16 KiB buffers, no splice",
  nginx_stream: "nginx stream module, one process (master_process off), proxy_pass, default 16 KiB buffer",
};

const HOTPATH_INDEX = new URL("../../src/hotpath/index.ts", import.meta.url).pathname;

/** Why our proxy cannot be measured, or "" when it can. */
export async function proxyMissing(): Promise<string> {
  if (!existsSync(HOTPATH_INDEX)) return "src/hotpath/index.ts does not exist yet (createProxy not landed)";
  try {
    const mod = await import(HOTPATH_INDEX);
    if (typeof mod.createProxy !== "function") return "src/hotpath/index.ts does not export createProxy yet";
  } catch (err) {
    return `src/hotpath/index.ts does not load: ${(err as Error).message}`;
  }
  return "";
}

interface ProxyProc {
  child: Child;
  ports: Record<string, { port: number; protocol: string }>;
}

async function startProxy(impl: "edgemesh" | "naive", backends: string[]): Promise<ProxyProc> {
  const child = spawnBun("./proxy-server.ts", ["--impl", impl, ...backends.flatMap((b) => ["--backend", b])]);
  const hello = await child.nextJson<{ listeners: ProxyProc["ports"] }>(20_000);
  return { child, ports: hello.listeners };
}

/** Run one benchmark; if it throws, record an ERROR row for it and carry on with the others. */
async function guard(results: Result[], name: string, unit: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    results.push({ name, unit, value: null, error: (err as Error).message.slice(0, 500) });
  }
}

export async function runMacro(options: MacroOptions): Promise<Result[]> {
  const { seconds, repeats, log } = options;
  const results: Result[] = [];
  const missing = await proxyMissing();
  const notMeasured = (name: string, unit: string, why: string): Result => ({ name, unit, value: null, ratio: null, notMeasured: why });

  // Backends.
  const iperfPort = freePort();
  const haveIperf = haveTool("iperf3");
  const haveSocat = haveTool("socat");
  const haveWrk = haveTool("wrk");
  if (haveIperf) {
    spawnChild(["iperf3", "-s", "-p", String(iperfPort)]);
    await waitTcp(iperfPort);
  }
  const http = spawnBun("./http-backend.ts");
  const httpPort = (await http.nextJson<{ port: number }>()).port;
  const udp = spawnBun("./udp-echo.ts");
  const udpPort = (await udp.nextJson<{ port: number }>()).port;
  const backends = [`iperf=TCP:127.0.0.1:${iperfPort}`, `http=TCP:127.0.0.1:${httpPort}`, `udp=UDP:127.0.0.1:${udpPort}`];

  let socatPort = 0;
  let socatPid = 0;
  if (haveIperf && haveSocat) {
    socatPort = freePort();
    socatPid = spawnChild(["socat", "-b262144", `TCP-LISTEN:${socatPort},reuseaddr,fork,bind=127.0.0.1`, `TCP:127.0.0.1:${iperfPort}`]).pid;
    await waitTcp(socatPort);
  }

  let proxy: ProxyProc | null = null;
  let proxyError = missing;
  if (!missing) {
    try {
      proxy = await startProxy("edgemesh", backends);
    } catch (err) {
      proxyError = "";
      results.push({ name: "proxy.start", unit: "", value: null, error: (err as Error).message });
    }
  }
  const naive = options.withNaive ? await startProxy("naive", backends) : null;
  // The L4 reference proxies, to the same backends; rows say why one is missing.
  let refs: RefProxy[] = [];
  let refsMissing: Record<string, string> = {};
  let stopRefs = async () => {};
  if (options.withRefs) {
    const started = await startReferences({ ...(haveIperf ? { iperf: iperfPort } : {}), http: httpPort });
    refs = started.refs;
    refsMissing = started.missing;
    stopRefs = started.stop;
  }
  const proxyUnavailable = (name: string, unit: string): Result =>
    proxyError ? notMeasured(name, unit, proxyError) : { name, unit, value: null, error: "proxy did not start (see proxy.start)" };

  if (proxy) {
    const bare = spawnBun("./bare-bun.ts");
    await bare.nextJson();
    await Bun.sleep(1000);
    const idle = await memoryOf(proxy.child.pid);
    const base = await memoryOf(bare.pid);
    await bare.stop();
    results.push(
      ratioResult("rss.idle", "MiB", [idle.rssMiB], { name: "bare Bun listener", runs: [base.rssMiB] }, {
        higherIsBetter: false,
        note: "VmRSS of the proxy process 1 s after its listeners are up; reference: a Bun process holding one listener (the runtime's own share)",
      }),
    );
  } else results.push(proxyUnavailable("rss.idle", "MiB"));

  // TCP bulk.
  if (haveIperf) await guard(results, "tcp.bulk.proxy", "Gbit/s", async () => {
    const direct: number[] = [];
    const ours: number[] = [];
    const socat: number[] = [];
    const naiveRuns: number[] = [];
    const refRuns = refs.map(() => [] as number[]);
    const refCpu = refs.map(() => [] as number[]);
    // CPU seconds per GiB forwarded: what the bytes cost, less sensitive to other load than rates.
    const oursCpu: number[] = [];
    const socatCpu: number[] = [];
    const perGiB = async (pid: number, port: number, rates: number[], cpu: number[]) => {
      const c0 = await cpuSecondsOf(pid);
      const t0 = performance.now();
      const gbps = await iperf3(port, seconds);
      const c1 = await cpuSecondsOf(pid);
      // iperf3 runs `seconds` + 1 omitted second; bytes over the whole run at the measured rate.
      const gib = (gbps * 1e9 * ((performance.now() - t0) / 1000 - 0.3)) / 8 / 2 ** 30;
      rates.push(gbps);
      cpu.push(((c1 - c0) * 1000) / gib);
    };
    for (let r = 0; r < repeats; r++) {
      direct.push(await iperf3(iperfPort, seconds));
      if (proxy) await perGiB(proxy.child.pid, proxy.ports.iperf!.port, ours, oursCpu);
      if (socatPort) await perGiB(socatPid, socatPort, socat, socatCpu);
      if (naive) naiveRuns.push(await iperf3(naive.ports.iperf!.port, seconds));
      for (let i = 0; i < refs.length; i++) await perGiB(refs[i]!.child.pid, refs[i]!.ports.iperf!, refRuns[i]!, refCpu[i]!);
      log(`tcp bulk repeat ${r + 1}: direct ${direct.at(-1)?.toFixed(1)} proxy ${ours.at(-1)?.toFixed(1) ?? "-"} socat ${socat.at(-1)?.toFixed(1) ?? "-"} Gbit/s`);
    }
    const ref = { name: "direct", runs: direct };
    results.push(proxy ? ratioResult("tcp.bulk.proxy", "Gbit/s", ours, ref) : proxyUnavailable("tcp.bulk.proxy", "Gbit/s"));
    results.push(socatPort ? ratioResult("tcp.bulk.socat", "Gbit/s", socat, ref, { note: "socat -b262144: the second proxy the issue compares against (measured there at 0.21x)" }) : notMeasured("tcp.bulk.socat", "Gbit/s", "socat not installed"));
    if (naive) results.push(ratioResult("tcp.bulk.naive_bun", "Gbit/s", naiveRuns, ref));
    refs.forEach((rp, i) => {
      results.push(ratioResult(`tcp.bulk.${rp.name}`, "Gbit/s", refRuns[i]!, ref, { note: `${REF_NOTE[rp.name]}; CPU ${median(refCpu[i]!).toFixed(0)} ms/GiB (ours ${median(oursCpu).toFixed(0)})` }));
      if (proxy) results.push(ratioResult(`tcp.bulk.proxy_vs_${rp.name}`, "Gbit/s", ours, { name: rp.name, runs: refRuns[i]! }));
    });
    for (const [name, why] of Object.entries(refsMissing)) results.push(notMeasured(`tcp.bulk.${name}`, "Gbit/s", why));
    if (proxy && socatPort) {
      results.push(ratioResult("tcp.bulk.proxy_vs_socat", "Gbit/s", ours, { name: "socat", runs: socat }));
      results.push(
        ratioResult("tcp.bulk.cpu_per_gib", "CPU-ms/GiB", oursCpu, { name: "socat", runs: socatCpu }, {
          higherIsBetter: false,
          note: "CPU time of the forwarding process per GiB carried (approximate: /proc ticks over the whole iperf3 run); ratio = socat's / ours",
        }),
      );
    }
  }); else results.push(notMeasured("tcp.bulk.proxy", "Gbit/s", "iperf3 not installed"));

  // Request rate.
  if (haveWrk) await guard(results, "http.rps.proxy", "req/s", async () => {
    const direct: number[] = [];
    const ours: number[] = [];
    const naiveRuns: number[] = [];
    // CPU microseconds of the forwarding process per request (/proc/PID/stat over the wrk run).
    const oursCpu: number[] = [];
    const refRuns = refs.map(() => [] as number[]);
    const refCpu = refs.map(() => [] as number[]);
    let errors = 0;
    const refErrors = refs.map(() => 0);
    const perRequest = async (pid: number, port: number, rates: number[], cpu: number[]) => {
      const c0 = await cpuSecondsOf(pid);
      const run = await wrk(port, seconds);
      const c1 = await cpuSecondsOf(pid);
      rates.push(run.rps);
      cpu.push(((c1 - c0) * 1e6) / (run.rps * seconds));
      return run.errors;
    };
    for (let r = 0; r < repeats; r++) {
      direct.push((await wrk(httpPort, seconds)).rps);
      if (proxy) errors += await perRequest(proxy.child.pid, proxy.ports.http!.port, ours, oursCpu);
      if (naive) naiveRuns.push((await wrk(naive.ports.http!.port, seconds)).rps);
      for (let i = 0; i < refs.length; i++) refErrors[i]! += await perRequest(refs[i]!.child.pid, refs[i]!.ports.http!, refRuns[i]!, refCpu[i]!);
      log(
        `request rate repeat ${r + 1}: direct ${direct.at(-1)?.toFixed(0)} proxy ${ours.at(-1)?.toFixed(0) ?? "-"}` +
          refs.map((rp, i) => ` ${rp.name} ${refRuns[i]!.at(-1)?.toFixed(0)}`).join("") + " req/s",
      );
    }
    const ref = { name: "direct", runs: direct };
    const note = errors ? `${errors} wrk errors through the proxy` : undefined;
    results.push(proxy ? ratioResult("http.rps.proxy", "req/s", ours, ref, { note }) : proxyUnavailable("http.rps.proxy", "req/s"));
    if (naive) results.push(ratioResult("http.rps.naive_bun", "req/s", naiveRuns, ref));
    refs.forEach((rp, i) => {
      const errs = refErrors[i] ? `; ${refErrors[i]} wrk errors` : "";
      results.push(ratioResult(`http.rps.${rp.name}`, "req/s", refRuns[i]!, ref, { note: `${REF_NOTE[rp.name]}${errs}` }));
      if (!proxy) return;
      results.push(ratioResult(`http.rps.proxy_vs_${rp.name}`, "req/s", ours, { name: rp.name, runs: refRuns[i]! }));
      results.push(
        ratioResult(`http.rps.cpu_vs_${rp.name}`, "us/req", oursCpu, { name: rp.name, runs: refCpu[i]! }, {
          higherIsBetter: false,
          note: "CPU time of the forwarding process per request (/proc/PID/stat, all threads) in the same wrk runs; ratio theirs / ours",
        }),
      );
    });
    for (const [name, why] of Object.entries(refsMissing)) results.push(notMeasured(`http.rps.${name}`, "req/s", why));
  }); else results.push(notMeasured("http.rps.proxy", "req/s", "wrk not installed"));

  // UDP.
  await guard(results, "udp.pps.proxy", "pkt/s", async () => {
    const direct: number[] = [];
    const ours: number[] = [];
    const naiveRuns: number[] = [];
    for (let r = 0; r < repeats; r++) {
      direct.push(await udpEcho(udpPort, seconds));
      if (proxy) ours.push(await udpEcho(proxy.ports.udp!.port, seconds));
      if (naive) naiveRuns.push(await udpEcho(naive.ports.udp!.port, seconds));
      log(`udp repeat ${r + 1}: direct ${direct.at(-1)?.toFixed(0)} proxy ${ours.at(-1)?.toFixed(0) ?? "-"} pkt/s`);
    }
    const ref = { name: "direct", runs: direct };
    results.push(proxy ? ratioResult("udp.pps.proxy", "pkt/s", ours, ref) : proxyUnavailable("udp.pps.proxy", "pkt/s"));
    if (naive) results.push(ratioResult("udp.pps.naive_bun", "pkt/s", naiveRuns, ref));
  });

  await stopRefs();

  // A proxy that died under load has no /proc entry left: that is an ERROR row, not a crash.
  if (proxy) {
    const p = proxy;
    await guard(results, "rss.peak", "MiB", async () => {
      const mem = await memoryOf(p.child.pid);
      results.push(summarize("rss.peak", "MiB", [mem.peakMiB], "VmHWM of the proxy process after the bulk, request-rate and UDP runs"));
    });
    await proxy.child.stop();
  } else results.push(proxyUnavailable("rss.peak", "MiB"));
  if (naive) {
    const n = naive;
    await guard(results, "rss.peak_naive_bun", "MiB", async () => {
      const mem = await memoryOf(n.child.pid);
      results.push(summarize("rss.peak_naive_bun", "MiB", [mem.peakMiB], "the naive Bun forwarder, same load"));
    });
    await naive.child.stop();
  }

  // Heap objects per chunk, in a fresh proxy process with the chunk counter installed.
  if (proxy) await guard(results, "heap.objects_per_chunk", "objects/chunk", async () => void results.push(...(await measureHeap(options.heapBytes, log))));
  else results.push(proxyUnavailable("heap.objects_per_chunk", "objects/chunk"), proxyUnavailable("heap.objects_per_chunk_small", "objects/chunk"));
  return results;
}
