// Main-thread side of the zero-copy engine. adopt() takes references of its own on two connected
// TCP sockets (dup), makes the two pipes, and queues the pair for the worker; the caller then
// closes its Bun sockets with close(). Why dup + close rather than sharing the fds with a paused
// Bun socket: see NOTES.md (a paused Bun socket stays in Bun's epoll and still reads, ends and
// closes it on a hang-up; terminate() would arm SO_LINGER 0 on the shared socket).

import { ptr } from "bun:ffi";
import type { Logger } from "../../log/index.ts";
import type { Counter, MetricsRegistry } from "../../metrics/index.ts";
import { F_DUPFD_CLOEXEC, F_SETPIPE_SZ, loadLibc, O_CLOEXEC, O_NONBLOCK } from "./libc.ts";
import type { NativeLoop } from "./native/compile.ts";
import { bytesOffset, CTRL_HEAD, CTRL_STOP, CTRL_WORDS, DONE_CLEAN, DONE_RESET, type DoneMessage, ENTRY_WORDS, sharedBytes } from "./layout.ts";

/** Pipe size per direction. 1 MiB holds a full socket buffer's worth, so one splice pair moves a
 * large batch per wake-up; needs fs.pipe-max-size >= it (default 1 MiB) or root. */
export const ZC_PIPE_BYTES = 1024 * 1024;

export type ZeroCopyReason = "done" | "reset" | "stopped";

export interface ZeroCopyDoneInfo {
  reason: ZeroCopyReason;
  /** Bytes delivered from side A (client) to side B (upstream), and back. */
  bytesAtoB: number;
  bytesBtoA: number;
  /** errno that failed the pair (reason "reset"), else 0. */
  errno: number;
}

export type ZeroCopyDone<T> = (info: ZeroCopyDoneInfo, ctx: T) => void;

export interface ZeroCopyEngineOptions {
  /** Most pairs at once; each holds 6 fds (2 sockets, 2 pipes) while adopted. */
  maxPairs: number;
  log: Logger;
  metrics: MetricsRegistry;
  pipeBytes?: number;
  /**
   * The C loop (native/compile.ts): the worker forwards in C with recv/send for small messages
   * and splice(2) for bulk, pipes made per direction only when needed (at most `maxPiped`
   * directions hold one), so a pair costs no fds beyond its two sockets until then. Without it,
   * the JS splice(2) worker with two pipes per pair. `loop` may be a function, called when the
   * worker starts (setup.ts compiles the loop then, not at creation).
   */
  native?: { loop: NativeLoop | (() => NativeLoop); maxPiped: number };
}

export interface ZeroCopyEngine {
  /**
   * Hand a connected pair over. On true the engine holds its own duplicates of both fds and moves
   * bytes both ways until both FINs passed or a side failed; the caller must now close its own
   * sockets with close() (never terminate(): it arms SO_LINGER 0 on the shared socket, and never
   * end(), which sends a FIN). On false nothing changed (engine full, stopped, or out of fds).
   * onDone(info, ctx) runs on the main thread once the engine closed its fds.
   */
  adopt<T>(fdA: number, fdB: number, onDone: ZeroCopyDone<T>, ctx: T): boolean;
  /**
   * The worker thread starts on the first adopt() (or start()), not with the engine: an agent
   * that never sees an elephant or keep-alive flow does not pay its 5-6 MiB. Until it is up,
   * adopt() refuses (the connection stays in JS) and starts it; a caller may try again later.
   */
  readonly ready: boolean;
  /** Not ready yet, but will be (not started, or starting; not stopped or failed). */
  readonly starting: boolean;
  /** Start the worker if it is not running; true once it takes pairs, false if it failed or stopped. */
  start(): Promise<boolean>;
  readonly active: number;
  /**
   * true: the C loop, cheap per message, so local TCP connections are handed over as soon as
   * they are connected; false: the splice(2) engine, for elephant flows only.
   */
  readonly smallFlows: boolean;
  /** Bytes moved so far, both directions, finished and live pairs (for scrapes, O(maxPairs)). */
  bytesMoved(): number;
  /** Resets every adopted pair, reports each as "stopped", ends the worker. */
  stop(): Promise<void>;
}

interface Metrics {
  adopted: Counter;
  refused: Counter;
  deferred: Counter;
  done: Counter;
  resets: Counter;
  bytes: Counter;
}

export function createZeroCopyEngine(opts: ZeroCopyEngineOptions): ZeroCopyEngine {
  return new Engine(opts);
}

const REASONS: readonly ZeroCopyReason[] = ["done", "reset", "stopped"];

class Engine implements ZeroCopyEngine {
  readonly #libc = loadLibc();
  readonly #max: number;
  readonly #pipeBytes: number;
  readonly #log: Logger;
  readonly #m: Metrics;
  readonly #ctrl: Int32Array;
  /** Live per-direction byte counts the worker writes (see layout.ts). */
  readonly #bytes: Float64Array;
  readonly #live: Uint8Array;
  #finishedBytes = 0;
  /** Started lazily (start()); null until then. */
  #worker: Worker | null = null;
  readonly #init: object;
  readonly #loop: (() => NativeLoop) | undefined;
  readonly #native: boolean;
  #ready = false;
  #starting: Promise<boolean> | null = null;
  #started: ((ok: boolean) => void) | null = null;
  readonly #eventFd: number;
  readonly #free: number[] = [];
  readonly #done: (ZeroCopyDone<unknown> | null)[];
  readonly #ctx: unknown[];
  readonly #fds = new Int32Array(2);
  readonly #one = new BigUint64Array([1n]);
  #stopping: Promise<void> | null = null;
  #stopped: (() => void) | null = null;
  active = 0;
  readonly smallFlows: boolean;

  constructor(opts: ZeroCopyEngineOptions) {
    this.#max = opts.maxPairs;
    this.smallFlows = opts.native !== undefined;
    this.#pipeBytes = opts.pipeBytes ?? ZC_PIPE_BYTES;
    this.#log = opts.log;
    const r = opts.metrics;
    this.#m = {
      adopted: r.counter("zerocopy_adopted_total", "Connections handed to the splice(2) engine"),
      refused: r.counter("zerocopy_refused_total", "Hand-overs refused (engine full or out of fds)"),
      deferred: r.counter("zerocopy_deferred_total", "Hand-overs left in JS because the worker was still starting"),
      done: r.counter("zerocopy_done_total", "Adopted connections finished"),
      resets: r.counter("zerocopy_resets_total", "Adopted connections reset (socket error or stop)"),
      bytes: r.counter("zerocopy_bytes_total", "Bytes moved by the engine, counted when a pair ends"),
    };
    // Live figures at scrape time (O(maxPairs) per scrape, nothing per byte): a keep-alive
    // connection handed over at connect may live long before its bytes reach the counters above.
    r.counterFn("zerocopy_moved_bytes_total", "Bytes moved by the engine so far, finished and live pairs", () => this.bytesMoved());
    r.gaugeFn("zerocopy_active_pairs", "Connections the engine holds now", () => this.active);
    this.#done = new Array(this.#max).fill(null);
    this.#ctx = new Array(this.#max).fill(null);
    for (let i = this.#max - 1; i >= 0; i--) this.#free.push(i);
    const sab = new SharedArrayBuffer(sharedBytes(this.#max));
    this.#ctrl = new Int32Array(sab, 0, bytesOffset(this.#max) / 4);
    this.#bytes = new Float64Array(sab, bytesOffset(this.#max), this.#max * 2);
    this.#live = new Uint8Array(this.#max);
    this.#eventFd = this.#libc.libc.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (this.#eventFd < 0) throw new Error(`zerocopy: eventfd failed: errno ${this.#libc.errno()}`);
    const native = opts.native;
    this.#native = native !== undefined;
    const init = { sab: this.#ctrl.buffer, maxPairs: this.#max, eventFd: this.#eventFd };
    this.#init = native ? { ...init, maxPiped: native.maxPiped, pipeBytes: this.#pipeBytes } : init;
    const loop = native?.loop;
    this.#loop = loop === undefined ? undefined : typeof loop === "function" ? loop : () => loop;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get starting(): boolean {
    return !this.#ready && this.#stopping === null;
  }

  start(): Promise<boolean> {
    if (this.#starting !== null) return this.#starting;
    if (this.#stopping !== null) return (this.#starting = Promise.resolve(false));
    this.#starting = new Promise<boolean>((resolve) => (this.#started = resolve));
    try {
      const w = new Worker(new URL(this.#native ? "./native/worker.ts" : "./worker.ts", import.meta.url).href);
      this.#worker = w;
      w.onmessage = (ev: MessageEvent) => this.#onMessage(ev.data);
      // The worker must not keep the process alive by itself; adopted pairs are owned by a
      // listener that does.
      w.unref();
      w.postMessage(this.#loop === undefined ? this.#init : { ...this.#init, loop: this.#loop() });
    } catch (err) {
      this.#log.error("zerocopy worker failed to start", { err });
      this.#finish();
    }
    return this.#starting;
  }

  adopt<T>(fdA: number, fdB: number, onDone: ZeroCopyDone<T>, ctx: T): boolean {
    if (!this.#ready && this.#stopping === null) {
      void this.start();
      this.#m.deferred.value++;
      return false;
    }
    if (this.#stopping !== null || this.#free.length === 0 || fdA < 0 || fdB < 0) {
      this.#m.refused.value++;
      return false;
    }
    const { libc } = this.#libc;
    const a = libc.fcntl(fdA, F_DUPFD_CLOEXEC, 0);
    const b = a < 0 ? -1 : libc.fcntl(fdB, F_DUPFD_CLOEXEC, 0);
    if (this.smallFlows) {
      // The C loop makes pipes itself, per direction, when one is needed.
      if (b < 0) {
        if (a >= 0) libc.close(a);
        this.#m.refused.value++;
        return false;
      }
      this.#fds[0] = -1;
      this.#fds[1] = -1;
      return this.#queue(a, b, -1, -1, onDone, ctx);
    }
    const p0 = b < 0 ? false : this.#pipe();
    const p0r = this.#fds[0]!;
    const p0w = this.#fds[1]!;
    const p1 = p0 ? this.#pipe() : false;
    if (!p1) {
      if (p0) {
        libc.close(p0r);
        libc.close(p0w);
      }
      if (b >= 0) libc.close(b);
      if (a >= 0) libc.close(a);
      this.#m.refused.value++;
      return false;
    }
    return this.#queue(a, b, p0r, p0w, onDone, ctx);
  }

  /** Queue an adopted pair for the worker (pipe B->A in #fds, -1 for the C loop). */
  #queue<T>(a: number, b: number, p0r: number, p0w: number, onDone: ZeroCopyDone<T>, ctx: T): boolean {
    const slot = this.#free.pop()!;
    this.#live[slot] = 1;
    // The worker never writes a free slot, so clearing the previous pair's count here is safe.
    this.#bytes[slot * 2] = 0;
    this.#bytes[slot * 2 + 1] = 0;
    this.#done[slot] = onDone as ZeroCopyDone<unknown>;
    this.#ctx[slot] = ctx;
    const c = this.#ctrl;
    const head = Atomics.load(c, CTRL_HEAD);
    const at = CTRL_WORDS + (head % this.#max) * ENTRY_WORDS;
    c[at] = slot;
    c[at + 1] = a;
    c[at + 2] = b;
    c[at + 3] = p0r;
    c[at + 4] = p0w;
    c[at + 5] = this.#fds[0]!;
    c[at + 6] = this.#fds[1]!;
    Atomics.store(c, CTRL_HEAD, head + 1);
    this.#wake();
    this.active++;
    this.#m.adopted.value++;
    return true;
  }

  bytesMoved(): number {
    let sum = this.#finishedBytes;
    for (let i = 0; i < this.#max; i++) if (this.#live[i] === 1) sum += this.#bytes[i * 2]! + this.#bytes[i * 2 + 1]!;
    return sum;
  }

  stop(): Promise<void> {
    if (this.#stopping === null && this.#worker === null) {
      // Never started: nothing to reset.
      this.#stopping = Promise.resolve();
      this.#finish();
    } else if (this.#stopping === null) {
      this.#stopping = new Promise<void>((resolve) => (this.#stopped = resolve));
      Atomics.store(this.#ctrl, CTRL_STOP, 1);
      this.#wake();
    }
    return this.#stopping;
  }

  /** A non-blocking pipe of the configured size into #fds; false if the process is out of fds. */
  #pipe(): boolean {
    const { libc } = this.#libc;
    if (libc.pipe2(ptr(this.#fds), O_NONBLOCK | O_CLOEXEC) !== 0) return false;
    // Failure leaves the default 64 KiB pipe: slower, still correct.
    libc.fcntl(this.#fds[0]!, F_SETPIPE_SZ, this.#pipeBytes);
    return true;
  }

  #wake(): void {
    this.#libc.libc.write(this.#eventFd, ptr(this.#one), 8);
  }

  #onMessage(msg: DoneMessage | number[] | { ready?: boolean; stopped?: boolean; fatal?: string }): void {
    if (!Array.isArray(msg)) {
      if (msg.ready === true) {
        if (this.#stopping === null) this.#ready = true;
        this.#settleStart(this.#ready);
        return;
      }
      if (msg.fatal !== undefined) this.#log.error("zerocopy worker failed", { err: msg.fatal });
      if (msg.stopped === true || msg.fatal !== undefined) this.#finish();
      return;
    }
    // One record (JS worker) or a batch of them (C loop), 5 numbers each.
    for (let i = 0; i + 5 <= msg.length; i += 5) this.#done1(msg[i]!, msg[i + 1]!, msg[i + 2]!, msg[i + 3]!, msg[i + 4]!);
  }

  #done1(slot: number, reason: number, ab: number, ba: number, err: number): void {
    const cb = this.#done[slot]!;
    const ctx = this.#ctx[slot];
    this.#done[slot] = null;
    this.#ctx[slot] = null;
    this.#free.push(slot);
    this.#live[slot] = 0;
    this.#finishedBytes += ab + ba;
    this.active--;
    this.#m.done.value++;
    if (reason !== DONE_CLEAN) this.#m.resets.value++;
    this.#m.bytes.value += ab + ba;
    try {
      cb({ reason: REASONS[reason] ?? "reset", bytesAtoB: ab, bytesBtoA: ba, errno: reason === DONE_RESET ? err : 0 }, ctx);
    } catch (e) {
      this.#log.error("zerocopy onDone callback threw", { err: e });
    }
  }

  #settleStart(ok: boolean): void {
    const resolve = this.#started;
    this.#started = null;
    if (resolve !== null) resolve(ok);
  }

  #finish(): void {
    if (this.#stopping === null) this.#stopping = Promise.resolve(); // fatal: refuse new pairs
    this.#ready = false;
    this.#worker?.terminate();
    this.#worker = null;
    this.#libc.libc.close(this.#eventFd);
    this.#settleStart(false);
    const resolve = this.#stopped;
    this.#stopped = null;
    if (resolve !== null) resolve();
  }
}
