// Upstream forwarder for names that are not ours: UDP with a per-attempt timeout and rotation to
// the next upstream, TCP when the reply was truncated or the client came over TCP, identical
// concurrent questions coalesced into one upstream query, answers handed to the cache.
// Runs off the hot path (a cache miss): allocation is fine here, throwing is not.
import type { Logger } from "../log/index.ts";
import type { Counter } from "../metrics/index.ts";
import { writeRcodeReply } from "./answer.ts";
import { type CacheEntry, DnsCache, prepareReply, writeCachedReply } from "./cache.ts";
import { writeChasedReply } from "./chase.ts";
import type { Template } from "./templates.ts";
import type { Upstream, UpstreamIO } from "./upstream.ts";
import { Query, RCODE_SERVFAIL, sameName } from "./wire.ts";

/** One client waiting for a forwarded answer. */
export interface Waiter {
  /** The client's header and question (copied out of the packet). */
  readonly head: Uint8Array;
  readonly qEnd: number;
  readonly hasOpt: boolean;
  /** Largest reply the client takes (its UDP size, or 65535 over TCP). */
  readonly limit: number;
  /** Opaque to the forwarder: where the server sends the reply (TCP connection, or UDP peer). */
  readonly conn: object | null;
  readonly port: number;
  readonly address: string;
  /** ExternalName: the CNAME template to put in front of the target's answer. */
  readonly chase: Template | null;
  /** performance.now() when the request arrived, for the request duration histogram. */
  readonly startedMs: number;
}

export interface ForwarderCounters {
  forwarded: Counter;
  coalesced: Counter;
  timeouts: Counter;
  servfail: Counter;
  truncated: Counter;
  overloaded: Counter;
  /** A question to forward with no upstream to ask (none configured, none in resolv.conf). */
  noUpstream: Counter;
}

export interface ForwarderOptions {
  readonly cache: DnsCache;
  readonly io: UpstreamIO;
  readonly counters: ForwarderCounters;
  readonly log: Logger;
  readonly now: () => number;
  /** Sends a finished reply to a waiter (the server knows UDP vs TCP). */
  readonly deliver: (w: Waiter, buf: Uint8Array, len: number) => void;
  readonly timeoutMs: number;
  readonly maxPending: number;
  /** Cap on how long any forwarded answer is cached, seconds (cacheDNS.cacheTTL). */
  readonly maxCacheTtlS: number;
}

/** Waiters per coalesced question beyond which new ones get SERVFAIL (a flood, not clients). */
const MAX_WAITERS = 1024;
/** Replies to forwarded questions are assembled here; 64 KiB + slack holds any TCP answer. */
const OUT_BYTES = 65535 + 512;

interface Pending {
  readonly key: number;
  readonly name: Uint8Array;
  readonly qtype: number;
  readonly qclass: number;
  readonly group: readonly Upstream[];
  readonly waiters: Waiter[];
  /** Index in `group` of the first upstream asked: the last one that answered. */
  readonly start: number;
  attempt: number;
  tcp: boolean;
  cancel: (() => void) | null;
}

export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #out = new Uint8Array(OUT_BYTES);
  /** Per upstream list, the one that answered last: a dead first resolver then costs one
   * timeout, not one per question. */
  readonly #preferred = new WeakMap<readonly Upstream[], number>();

  constructor(o: ForwarderOptions) {
    this.#o = o;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Ask `group` for q (the packet `query`), reply to `w` when done. */
  forward(q: Query, key: number, group: readonly Upstream[], w: Waiter, viaTcp: boolean): void {
    const c = this.#o.counters;
    const p = this.#pending.get(key);
    if (p !== undefined && p.qtype === q.qtype && p.qclass === q.qclass && sameName(q, p.name)) {
      if (p.waiters.length >= MAX_WAITERS) return this.#failOne(w, c.overloaded);
      p.waiters.push(w);
      c.coalesced.value++;
      return;
    }
    if (group.length === 0) return this.#failOne(w, c.noUpstream);
    if (this.#pending.size >= this.#o.maxPending) return this.#failOne(w, c.overloaded);
    const np: Pending = {
      key, name: q.name.slice(0, q.nameLen), qtype: q.qtype, qclass: q.qclass, group,
      waiters: [w], start: this.#preferred.get(group) ?? 0, attempt: 0, tcp: viaTcp, cancel: null,
    };
    // A colliding key with another name is not coalesced, only tracked by its own attempt.
    if (p === undefined) this.#pending.set(key, np);
    this.#send(np);
  }

  stop(): void {
    for (const p of this.#pending.values()) p.cancel?.();
    this.#pending.clear();
  }

  #send(p: Pending): void {
    this.#o.counters.forwarded.value++;
    const up = p.group[(p.start + p.attempt) % p.group.length]!;
    const done = (reply: Uint8Array | null, truncated: boolean) => this.#onReply(p, reply, truncated);
    const args = { upstream: up, name: p.name, qtype: p.qtype, qclass: p.qclass, timeoutMs: this.#o.timeoutMs };
    p.cancel = p.tcp ? this.#o.io.tcp(args, done) : this.#o.io.udp(args, done);
  }

  #onReply(p: Pending, reply: Uint8Array | null, truncated: boolean): void {
    p.cancel = null;
    if (reply === null) {
      this.#o.counters.timeouts.value++;
      p.attempt++;
      if (p.attempt >= Math.max(2, p.group.length)) return this.#finish(p, null);
      return this.#send(p);
    }
    if (truncated && !p.tcp) {
      p.tcp = true; // same upstream, whole answer over TCP
      return this.#send(p);
    }
    this.#preferred.set(p.group, (p.start + p.attempt) % p.group.length);
    this.#finish(p, reply);
  }

  #finish(p: Pending, reply: Uint8Array | null): void {
    if (this.#pending.get(p.key) === p) this.#pending.delete(p.key);
    const o = this.#o;
    const prepared = reply ? prepareReply(reply) : null;
    if (prepared === null) {
      if (reply) o.log.debug("malformed upstream reply", { bytes: reply.length });
      for (const w of p.waiters) this.#failOne(w, o.counters.servfail);
      return;
    }
    const now = o.now();
    // Capped TTLs are what clients see too, as with CoreDNS's cache: nobody holds the answer longer.
    const ttls = prepared.ttls;
    for (let i = 0; i < ttls.length; i++) if (ttls[i]! > o.maxCacheTtlS) ttls[i] = o.maxCacheTtlS;
    const entry: CacheEntry = {
      name: p.name, qtype: p.qtype, qclass: p.qclass, wire: prepared.wire, ttlOffsets: prepared.ttlOffsets,
      ttls: prepared.ttls, answerEnds: prepared.answerEnds, storedAt: now, expiresAt: now + Math.min(prepared.cacheTtl, o.maxCacheTtlS) * 1000,
    };
    if (entry.expiresAt > now) o.cache.set(p.key, entry);
    for (const w of p.waiters) {
      try {
        const len = w.chase !== null
          ? writeChasedReply(w.chase, entry, w.head, w.qEnd, w.hasOpt, w.limit, now, this.#out, o.counters.truncated)
          : writeCachedReply(entry, w.head, w.qEnd, w.hasOpt, w.limit, now, this.#out, o.counters.truncated);
        o.deliver(w, this.#out, len);
      } catch (err) {
        o.log.warn("delivering forwarded reply failed", { err });
      }
    }
  }

  #failOne(w: Waiter, counter: Counter): void {
    counter.value++;
    try {
      const len = writeRcodeReply(w.head, w.qEnd, w.hasOpt, RCODE_SERVFAIL, this.#out);
      this.#o.deliver(w, this.#out, len);
    } catch (err) {
      this.#o.log.warn("delivering SERVFAIL failed", { err });
    }
  }
}
