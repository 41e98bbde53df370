// DNS request and response metrics in CoreDNS's shape (requests by transport, responses by rcode
// and qtype, request duration histogram), so an operator's CoreDNS dashboards translate. The
// hot path passes numbers; a (rcode, qtype) series is created the first time that pair is seen
// (at most RCODE_LABELS x QTYPE_LABELS series), and every later count is a plain field increment.

import { type Counter, type Histogram, LATENCY_BUCKETS_SECONDS, type MetricsRegistry } from "../metrics/index.ts";

/** Where an answer came from: the zone (or an error reply made here), the cache, an upstream. */
export const SOURCE_LOCAL = 0;
export const SOURCE_CACHE = 1;
export const SOURCE_UPSTREAM = 2;
const SOURCES = ["local", "cache", "upstream"] as const;

/** Extended RCODE BADVERS (16) lives in the OPT record; the header says NOERROR. */
export const RCODE_BADVERS = 16;

const RCODE_NAMES: Record<number, string> = {
  0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
  6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS",
};

/** The qtypes with a label of their own (CoreDNS's list, trimmed); the rest count as "other". */
const QTYPE_NAMES: Record<number, string> = {
  1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
  35: "NAPTR", 43: "DS", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA",
};

const RCODE_INDEX = indexOf(RCODE_NAMES);
const QTYPE_INDEX = indexOf(QTYPE_NAMES);
const RCODE_LABELS = [...Object.values(RCODE_NAMES), "other"];
const QTYPE_LABELS = [...Object.values(QTYPE_NAMES), "other"];

export class DnsStats {
  readonly #m: MetricsRegistry;
  readonly udp: Counter;
  readonly tcp: Counter;
  readonly #duration: Histogram[];
  /** [rcode index * QTYPE_LABELS.length + qtype index] -> counter, made on first use. */
  readonly #responses: (Counter | undefined)[] = new Array(RCODE_LABELS.length * QTYPE_LABELS.length);

  constructor(m: MetricsRegistry) {
    this.#m = m;
    const requests = (proto: string) => m.counter("dns_requests_total", "DNS requests received, by transport", { proto });
    this.udp = requests("udp");
    this.tcp = requests("tcp");
    this.#duration = SOURCES.map((source) =>
      m.histogram("dns_request_duration_seconds", "From a request's arrival to its answer being handed to the socket, by where the answer came from", LATENCY_BUCKETS_SECONDS, { source }),
    );
  }

  /** One answer went out: its rcode, the question's qtype, where it came from, and when the request arrived (performance.now()). */
  respond(qtype: number, rcode: number, source: number, startedMs: number): void {
    this.#duration[source]!.observe((performance.now() - startedMs) / 1000);
    const r = RCODE_INDEX[rcode] ?? RCODE_LABELS.length - 1;
    const t = QTYPE_INDEX[qtype] ?? QTYPE_LABELS.length - 1;
    const i = r * QTYPE_LABELS.length + t;
    let c = this.#responses[i];
    if (c === undefined) {
      c = this.#m.counter("dns_responses_total", "DNS responses sent, by response code and question type", { rcode: RCODE_LABELS[r]!, qtype: QTYPE_LABELS[t]! });
      this.#responses[i] = c;
    }
    c.value++;
  }
}

function indexOf(names: Record<number, string>): Record<number, number> {
  const out: Record<number, number> = {};
  Object.keys(names).forEach((k, i) => (out[Number(k)] = i));
  return out;
}
