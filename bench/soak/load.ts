// The soak test's load generator, run inside a client pod (bench/soak.ts starts it): a steady,
// bounded mix at fixed rates until --seconds have passed, one JSON line per --report seconds:
//   http  a new TCP connection per request, HTTP/1.0 GET, 200 expected
//   tcp   a new connection per request to a TCP echo: 64 random bytes, the same 64 back
//   tcpl  one long-lived echo connection, a round trip per tick (it survives endpoint churn:
//         its endpoint stays alive, only leaves the service)
//   udp   64-byte datagrams to a UDP echo from a pool of sockets, one socket replaced every
//         --new-flow-every seconds (new flows keep appearing); each must come back in 2 s
//   dns   A queries for cluster names to the node's DNS, the expected cluster IP must be in it
// Line: {"t": s since start, "<kind>": {"ok": n, "fail": n, "p50": ms, "p99": ms}, ...,
//        "fails": [[epoch ms the request started, kind, reason], ...]} (at most 2000 a line; the
//        driver matches them against its fault windows)
//   bun load.ts --http IP:P --tcp IP:P --udp IP:P --dns IP:P --names n1=ip,n2=ip [--seconds 60]
//       [--rate-http 20] [--rate-tcp 10] [--rate-udp 20] [--rate-dns 20] [--report 10]

import * as dnsPacket from "dns-packet";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    http: { type: "string" },
    tcp: { type: "string" },
    udp: { type: "string" },
    dns: { type: "string" },
    names: { type: "string", default: "" },
    seconds: { type: "string", default: "60" },
    "rate-http": { type: "string", default: "20" },
    "rate-tcp": { type: "string", default: "10" },
    "rate-udp": { type: "string", default: "20" },
    "rate-dns": { type: "string", default: "20" },
    "new-flow-every": { type: "string", default: "2" },
    report: { type: "string", default: "10" },
  },
});

const hostPort = (s: string | undefined) => {
  if (!s) return undefined;
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};
const endAt = Date.now() + Math.min(Number(a.seconds), 24 * 3600) * 1000;
const TIMEOUT_MS = 3000;
const kinds = ["http", "tcp", "tcpl", "udp", "dns"] as const;
type Kind = (typeof kinds)[number];
const stats = Object.fromEntries(kinds.map((k) => [k, { ok: 0, fail: 0, ms: [] as number[] }])) as Record<Kind, { ok: number; fail: number; ms: number[] }>;
const fails: [number, Kind, string][] = [];
const started = Date.now();

/** One request ended; t0 is performance.now() when it started. */
function done(kind: Kind, t0: number, err?: string): void {
  const s = stats[kind];
  if (err === undefined) {
    s.ok++;
    s.ms.push(performance.now() - t0);
  } else {
    s.fail++;
    if (fails.length < 2000) fails.push([Math.round(performance.timeOrigin + t0), kind, err]);
  }
}

/** Calls fn rate times a second until the end. */
function every(rate: number, fn: () => void): void {
  if (!(rate > 0)) return;
  const t = setInterval(() => (Date.now() < endAt ? fn() : clearInterval(t)), 1000 / rate);
}

/** One exchange on a new TCP connection: send `out`, collect until `complete(received)` or close. */
function tcpOnce(kind: Kind, target: { host: string; port: number }, out: Uint8Array, check: (got: Buffer, closed: boolean) => string | undefined | "wait"): void {
  const t0 = performance.now();
  let finished = false;
  const chunks: Buffer[] = [];
  let sock: { end(): void } | undefined;
  const finish = (err?: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    sock?.end();
    done(kind, t0, err);
  };
  const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
  const verdict = (closed: boolean) => {
    const v = check(Buffer.concat(chunks), closed);
    if (v === "wait") {
      if (closed) finish("closed early");
      return;
    }
    finish(v);
  };
  Bun.connect({
    hostname: target.host,
    port: target.port,
    socket: {
      open(s) {
        s.write(out);
      },
      data(_s, d) {
        chunks.push(Buffer.from(d));
        verdict(false);
      },
      close() {
        verdict(true);
      },
      error(_s, e) {
        finish(String(e));
      },
      connectError(_s, e) {
        finish(String(e));
      },
    },
  })
    .then((s) => (sock = s))
    .catch((e) => finish(String(e)));
}

const http = hostPort(a.http);
if (http) {
  const req = new TextEncoder().encode(`GET / HTTP/1.0\r\nHost: web\r\n\r\n`);
  every(Number(a["rate-http"]), () =>
    tcpOnce("http", http, req, (got, closed) => {
      if (!closed) return "wait";
      const text = got.toString("latin1");
      return text.startsWith("HTTP/1.") && text.slice(9, 12) === "200" ? undefined : `bad response ${JSON.stringify(text.slice(0, 30))}`;
    }),
  );
}

const tcp = hostPort(a.tcp);
if (tcp) {
  every(Number(a["rate-tcp"]), () => {
    const out = crypto.getRandomValues(new Uint8Array(64));
    tcpOnce("tcp", tcp, out, (got) => (got.length < out.length ? "wait" : got.equals(Buffer.from(out)) ? undefined : "echo differs"));
  });
  // The long-lived connection: a round trip per tick. If it drops or a round trip times out
  // (counted as a failure), a new connection replaces it (a late echo on the old one would
  // answer the next round trip).
  type Long = { sock?: { write(b: Uint8Array): number; end(): void }; waiting?: { t0: number; want: Buffer; got: Buffer[] }; over: boolean; since: number; drop(why: string): void };
  let cur: Long | undefined;
  const connect = () => {
    const me: Long = { over: false, since: performance.now(), drop: (why) => drop(why) };
    cur = me;
    const drop = (why: string) => {
      if (me.over) return;
      me.over = true;
      if (me.waiting && Date.now() < endAt) done("tcpl", me.waiting.t0, why);
      me.waiting = undefined;
      me.sock?.end();
      if (cur === me) cur = undefined;
    };
    Bun.connect({
      hostname: tcp.host,
      port: tcp.port,
      socket: {
        data(_s, d) {
          const w = me.waiting;
          if (!w) return;
          w.got.push(Buffer.from(d));
          const got = Buffer.concat(w.got);
          if (got.length >= w.want.length) {
            me.waiting = undefined;
            done("tcpl", w.t0, got.equals(w.want) ? undefined : "echo differs");
          }
        },
        close: () => drop("connection closed"),
        error() {},
      },
    }).then(
      (sock) => (me.over ? sock.end() : (me.sock = sock)),
      () => drop("connect failed"),
    );
    return me;
  };
  connect();
  every(5, () => {
    const me = cur ?? connect();
    if (!me.sock) {
      if (performance.now() - me.since > TIMEOUT_MS) me.drop("connect timeout");
      return;
    }
    if (me.waiting) {
      if (performance.now() - me.waiting.t0 > TIMEOUT_MS) me.drop("timeout");
      return;
    }
    const want = Buffer.from(crypto.getRandomValues(new Uint8Array(64)));
    me.waiting = { t0: performance.now(), want, got: [] };
    me.sock.write(want);
  });
}

const udp = hostPort(a.udp);
if (udp) {
  type Flow = { sock: { send(data: Uint8Array, port: number, address: string): boolean; close(): void }; pending: Map<string, number> };
  const flows: Flow[] = [];
  const open = async (): Promise<Flow> => {
    const flow: Flow = { sock: undefined as never, pending: new Map() };
    flow.sock = await Bun.udpSocket({
      socket: {
        data(_s, d) {
          const key = Buffer.from(d).toString("hex");
          const t0 = flow.pending.get(key);
          if (t0 === undefined) return;
          flow.pending.delete(key);
          done("udp", t0);
        },
      },
    });
    return flow;
  };
  for (let i = 0; i < 8; i++) flows.push(await open());
  let n = 0;
  every(Number(a["rate-udp"]), () => {
    const flow = flows[n++ % flows.length]!;
    const payload = crypto.getRandomValues(new Uint8Array(64));
    const key = Buffer.from(payload).toString("hex");
    flow.pending.set(key, performance.now());
    flow.sock.send(payload, udp.port, udp.host);
  });
  // Unanswered datagrams fail after the timeout; a retired socket's are judged before it closes.
  const sweep = (flow: Flow, all = false) => {
    const now = performance.now();
    for (const [key, t0] of flow.pending) {
      if (all || now - t0 > TIMEOUT_MS) {
        flow.pending.delete(key);
        done("udp", t0, "no echo");
      }
    }
  };
  every(2, () => flows.forEach((f) => sweep(f)));
  every(1 / Number(a["new-flow-every"]), () => {
    const old = flows.shift()!;
    void open().then((f) => flows.push(f));
    setTimeout(() => {
      sweep(old, true);
      old.sock.close();
    }, TIMEOUT_MS);
  });
}

const dns = hostPort(a.dns);
const names = a.names!.split(",").filter(Boolean).map((p) => p.split("=") as [string, string]);
if (dns && names.length > 0) {
  const pending = new Map<number, { t0: number; ip: string }>();
  const sock = await Bun.udpSocket({
    socket: {
      data(_s, d) {
        let msg;
        try {
          msg = dnsPacket.decode(Buffer.from(d));
        } catch {
          return;
        }
        const p = pending.get(msg.id ?? -1);
        if (!p) return;
        pending.delete(msg.id!);
        const ips = (msg.answers ?? []).filter((x) => x.type === "A").map((x) => (x as { data: string }).data);
        done("dns", p.t0, ips.includes(p.ip) ? undefined : `answer ${JSON.stringify(ips)} lacks ${p.ip}`);
      },
    },
  });
  let id = 1;
  every(Number(a["rate-dns"]), () => {
    const [name, ip] = names[id % names.length]!;
    id = (id % 65535) + 1;
    pending.set(id, { t0: performance.now(), ip });
    sock.send(dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name }] }), dns.port, dns.host);
  });
  every(2, () => {
    const now = performance.now();
    for (const [k, p] of pending) if (now - p.t0 > TIMEOUT_MS) (pending.delete(k), done("dns", p.t0, "no answer"));
  });
}

function pct(ms: number[], q: number): number {
  if (ms.length === 0) return 0;
  const s = [...ms].sort((x, y) => x - y);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
}

function report(): void {
  const line: Record<string, unknown> = { t: Math.round((Date.now() - started) / 1000) };
  for (const k of kinds) {
    const s = stats[k];
    line[k] = { ok: s.ok, fail: s.fail, p50: pct(s.ms, 0.5), p99: pct(s.ms, 0.99) };
    s.ok = s.fail = 0;
    s.ms.length = 0;
  }
  line.fails = fails.splice(0);
  console.log(JSON.stringify(line));
}

const reporter = setInterval(report, Number(a.report) * 1000);
setTimeout(() => {
  clearInterval(reporter);
  // Let the last requests finish or time out, then the final partial interval.
  setTimeout(() => {
    report();
    console.log(JSON.stringify({ done: true }));
    process.exit(0);
  }, TIMEOUT_MS + 500);
}, endAt - Date.now());
process.on("SIGTERM", () => process.exit(0));
