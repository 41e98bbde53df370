// Upstream connections of the HTTP gateway and their pool. An Upstream is one connection to one
// endpoint: a Bun socket for endpoints on this node, a tunnel stream (the agent's RemoteDialer)
// for endpoints on other nodes. It is the StreamSink of both, so the exchange code sees one
// kind of upstream. Between requests it waits in the pool of its endpoint (LIFO: the most
// recently used connection is the least likely to have been closed by the server); an idle
// upstream that sends anything or closes is dropped from the pool.

import type { SocketHandler } from "bun";
import type { ByteStream, StreamSink } from "../hotpath/index.ts";
import { MAX_IDLE_PER_ENDPOINT, UPSTREAM_IDLE_TIMEOUT_MS } from "./constants.ts";

/** What an Upstream reports to the exchange that owns it. */
export interface UpstreamOwner {
  upstreamOpen(u: Upstream): void;
  upstreamFailed(u: Upstream): void;
  upstreamData(u: Upstream, chunk: Uint8Array): void;
  upstreamDrain(u: Upstream): void;
  upstreamEnd(u: Upstream): void;
  upstreamClosed(u: Upstream, error: Error | undefined): void;
}

export const U_CONNECTING = 0;
export const U_READY = 1;
export const U_IDLE = 2;
export const U_CLOSED = 3;

export class Upstream implements StreamSink {
  stream: ByteStream | null = null;
  owner: UpstreamOwner | null;
  state = U_CONNECTING;
  /** Has carried a request before (a failure before any answer may be the server's idle close). */
  reused = false;
  idleSince = 0;
  /** Not to be pooled (protocol error, FIN seen, upgraded). */
  broken = false;
  /** The stream keeps written buffers by reference (a tunnel stream): reused buffers must be copied. */
  copyWrites = false;
  constructor(
    readonly key: string,
    readonly pool: UpstreamPool,
    owner: UpstreamOwner,
  ) {
    this.owner = owner;
  }

  open(stream: ByteStream): void {
    if (this.state !== U_CONNECTING) {
      stream.terminate();
      return;
    }
    this.stream = stream;
    this.state = U_READY;
    const o = this.owner;
    if (o === null) {
      // Abandoned while connecting (timed out, client gone).
      this.close0();
      return;
    }
    o.upstreamOpen(this);
  }
  fail(_error: Error): void {
    if (this.state !== U_CONNECTING) return;
    this.state = U_CLOSED;
    this.owner?.upstreamFailed(this);
    this.owner = null;
  }
  data(chunk: Uint8Array): void {
    const o = this.owner;
    if (o !== null) o.upstreamData(this, chunk);
    else if (this.state === U_IDLE) this.dropIdle(true); // bytes nobody asked for: unusable
  }
  drain(): void {
    this.owner?.upstreamDrain(this);
  }
  end(): void {
    this.broken = true;
    const o = this.owner;
    if (o !== null) o.upstreamEnd(this);
    else if (this.state === U_IDLE) this.dropIdle(false);
  }
  close(error?: Error): void {
    if (this.state === U_CONNECTING) return this.fail(error ?? new Error("closed while connecting"));
    const was = this.state;
    this.state = U_CLOSED;
    this.stream = null;
    if (was === U_IDLE) this.pool.remove(this);
    const o = this.owner;
    this.owner = null;
    o?.upstreamClosed(this, error);
  }

  /** Close it (gracefully when it is in a clean state, else reset). */
  close0(reset = false): void {
    const s = this.stream;
    this.owner = null;
    if (s === null) return;
    if (reset || this.broken) s.terminate();
    else s.end();
  }

  private dropIdle(reset: boolean): void {
    this.pool.remove(this);
    this.state = U_CLOSED;
    const s = this.stream;
    this.stream = null;
    if (s !== null) {
      if (reset) s.terminate();
      else s.end();
    }
  }
}

/** Bun socket handler for local upstreams: forwards to the Upstream in socket.data. */
export const upstreamSocketHandler: SocketHandler<Upstream, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    s.setNoDelay(true);
    s.data.open(s as unknown as ByteStream);
  },
  connectError(s, err) {
    s.data.fail(err);
  },
  data(s, buf) {
    s.data.data(buf);
  },
  drain(s) {
    s.data.drain();
  },
  end(s) {
    s.data.end();
  },
  close(s, err) {
    s.data.close(err);
  },
  error() {},
};

/** Idle upstream connections by endpoint key ("node|ip:port"). */
export class UpstreamPool {
  readonly #idle = new Map<string, Upstream[]>();
  size = 0;
  constructor(readonly clock: { now(): number }) {}

  /** A live idle connection to the endpoint, now owned by `owner`; null when there is none. */
  take(key: string, owner: UpstreamOwner): Upstream | null {
    const list = this.#idle.get(key);
    if (list === undefined) return null;
    while (list.length > 0) {
      const u = list.pop()!;
      this.size--;
      if (u.state !== U_IDLE || u.stream === null) continue;
      u.state = U_READY;
      u.owner = owner;
      u.reused = true;
      return u;
    }
    return null;
  }

  /** Keep an upstream whose exchange ended cleanly; closes it when the endpoint has enough. */
  release(u: Upstream, now = this.clock.now()): void {
    u.owner = null;
    if (u.state !== U_READY || u.broken || u.stream === null) {
      u.close0(u.broken);
      return;
    }
    let list = this.#idle.get(u.key);
    if (list === undefined) {
      list = [];
      this.#idle.set(u.key, list);
    }
    if (list.length >= MAX_IDLE_PER_ENDPOINT) {
      u.close0();
      return;
    }
    u.state = U_IDLE;
    u.idleSince = now;
    list.push(u);
    this.size++;
  }

  remove(u: Upstream): void {
    const list = this.#idle.get(u.key);
    if (list === undefined) return;
    const i = list.indexOf(u);
    if (i >= 0) {
      list.splice(i, 1);
      this.size--;
    }
    if (list.length === 0) this.#idle.delete(u.key);
  }

  /** Close connections idle for longer than the timeout. */
  sweep(now: number): void {
    for (const [key, list] of this.#idle) {
      // Oldest first (bottom of the stack).
      while (list.length > 0 && now - list[0]!.idleSince >= UPSTREAM_IDLE_TIMEOUT_MS) {
        const u = list.shift()!;
        this.size--;
        u.state = U_CLOSED;
        const s = u.stream;
        u.stream = null;
        s?.end();
      }
      if (list.length === 0) this.#idle.delete(key);
    }
  }

  closeAll(): void {
    for (const list of this.#idle.values()) {
      for (const u of list) {
        u.state = U_CLOSED;
        const s = u.stream;
        u.stream = null;
        s?.end();
      }
    }
    this.#idle.clear();
    this.size = 0;
  }

  idleCount(): number {
    return this.size;
  }
}
