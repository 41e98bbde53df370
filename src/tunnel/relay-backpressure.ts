// How a relay joins a relayed connection's two streams: a splice with backpressure, no queue.
//
// @libp2p/circuit-relay-v2 4.x joins the hop stream (source peer) and the stop stream
// (destination peer) with @libp2p/utils' pipe(): messageStreamToDuplex() pushes every message
// into an it-pushable and a generator loop forwards it. Measured: the relay keeps every byte it
// has forwarded reachable until the relayed connection ends (a forced full GC frees nothing
// while it runs). A relay that carried 500 MiB stood at 630 MiB RSS; in the netns bed
// (bench/netns-bench.ts --mode relay) it reached 1.2 GB after 10 s of iperf3. With the splice
// below, the same 500 MiB leave the relay at 130 MiB and it returns to idle after.
//
// The splice: a message from one side is sent to the other at once; when the other's write
// buffer is full (send() false) the side is paused (yamux stops granting window, so the peer
// stops sending) until 'drain'. A half-close is passed on; a reset aborts both.
//
// The library does the join inside CircuitRelayServer.handleConnect (after its reservation,
// gater and STOP exchange, which we keep): createLimitedRelay(hop.unwrap(), stopStream, ...).
// Neither the class nor the join is exported, so this is the one place that adjusts it:
// - handleConnect is wrapped: the hop stream it gets unwraps to an inert stand-in, and a
//   per-call context rides in its options object (which it hands, unchanged, to stopHop);
// - stopHop is wrapped: the real destination stream goes into the context, the library gets
//   another stand-in;
// - the library's pipe joins the two stand-ins (they carry nothing); we splice the real pair
//   and close the stand-ins when both real streams are done, so the library's pipe and its
//   abort-signal listeners end with the relayed connection. The library aborting a stand-in
//   (relay shutdown) aborts the real stream.
// The class is loaded relative to the package's entry point (the module instance the package
// uses). tunnel-relay-backpressure.test.ts fails if the library changes shape.

/** The part of libp2p 3's Stream (AbstractMessageStream) the splice uses. */
export interface SpliceStream {
  readonly writeStatus: string;
  readonly remoteWriteStatus: string;
  readonly status: string;
  send(data: unknown): boolean;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
  abort(err: Error): void;
  addEventListener(type: string, fn: (evt: any) => void, opts?: { once?: boolean }): void;
  removeEventListener(type: string, fn: (evt: any) => void): void;
}

interface Pair {
  src?: SpliceStream;
  dst?: SpliceStream;
  srcStandIn: StandIn;
  dstStandIn: StandIn;
}

type HandleConnect = (this: unknown, args: { stream: { unwrap(): SpliceStream } & Record<PropertyKey, unknown> }, options?: object) => Promise<void>;
type StopHop = (this: unknown, args: unknown, options?: Record<PropertyKey, unknown>) => Promise<SpliceStream | undefined>;

const PATCHED = Symbol.for("edgemesh.relaySplice");
const PAIR = Symbol("edgemesh.relayPair");

export async function installRelayBackpressure(): Promise<void> {
  const entry = import.meta.resolve("@libp2p/circuit-relay-v2");
  const { CircuitRelayServer } = (await import(new URL("./server/index.js", entry).href)) as { CircuitRelayServer?: { prototype: Record<PropertyKey, unknown> } };
  const p = CircuitRelayServer?.prototype;
  if (!p || typeof p.handleConnect !== "function" || typeof p.stopHop !== "function") {
    throw new Error("@libp2p/circuit-relay-v2 changed (CircuitRelayServer.handleConnect / stopHop): review src/tunnel/relay-backpressure.ts");
  }
  if (p[PATCHED] === true) return;

  const handleConnect = p.handleConnect as HandleConnect;
  const stopHop = p.stopHop as StopHop;
  p.handleConnect = async function (this: unknown, args: Parameters<HandleConnect>[0], options?: object) {
    const pair: Pair = { srcStandIn: new StandIn(), dstStandIn: new StandIn() };
    const hop = args.stream;
    // Everything but unwrap() goes to the library's own hop stream wrapper.
    const hopView = Object.create(hop, {
      unwrap: {
        value: () => {
          pair.src = hop.unwrap();
          pair.srcStandIn.real = pair.src;
          return pair.srcStandIn;
        },
      },
    });
    await handleConnect.call(this, { ...args, stream: hopView }, { ...options, [PAIR]: pair });
    if (pair.src && pair.dst) {
      splice(pair.src, pair.dst, () => {
        pair.srcStandIn.end();
        pair.dstStandIn.end();
      });
    }
  };
  p.stopHop = async function (this: unknown, args: unknown, options?: Record<PropertyKey, unknown>) {
    const dst = await stopHop.call(this, args, options);
    const pair = options?.[PAIR] as Pair | undefined;
    if (!pair || !dst) return dst;
    pair.dst = dst;
    pair.dstStandIn.real = dst;
    return pair.dstStandIn as unknown as SpliceStream;
  };
  p[PATCHED] = true;
}

/**
 * Joins a and b both ways with backpressure; `done` runs once when both are closed.
 * Never throws from a listener (an exception there would escape into yamux).
 */
export function splice(a: SpliceStream, b: SpliceStream, done: () => void): void {
  let open = 2;
  const finished = () => {
    if (--open === 0) done();
  };
  oneWay(a, b, finished);
  oneWay(b, a, finished);
}

function oneWay(from: SpliceStream, to: SpliceStream, finished: () => void): void {
  let paused = false;
  const resume = () => {
    if (!paused) return;
    paused = false;
    from.resume();
  };
  const onMessage = (evt: { data: unknown }) => {
    try {
      if (to.send(evt.data)) return;
    } catch (err) {
      // `to` cannot take bytes any more (closed for writing or reset): nothing can carry them.
      from.abort(err as Error);
      return;
    }
    if (paused) return;
    paused = true;
    from.pause();
    to.addEventListener("drain", resume, { once: true });
  };
  const onRemoteCloseWrite = () => {
    to.close().catch((err: Error) => to.abort(err));
  };
  const onClose = (evt: { error?: Error }) => {
    from.removeEventListener("message", onMessage);
    from.removeEventListener("remoteCloseWrite", onRemoteCloseWrite);
    to.removeEventListener("drain", resume);
    if (evt.error && to.status !== "closed" && to.status !== "aborted") to.abort(evt.error);
    finished();
  };
  from.addEventListener("message", onMessage);
  from.addEventListener("remoteCloseWrite", onRemoteCloseWrite, { once: true });
  from.addEventListener("close", onClose, { once: true });
  // The far side may have half-closed before we were attached (its bytes wait in the stream).
  if (from.remoteWriteStatus === "closed") queueMicrotask(onRemoteCloseWrite);
}

/**
 * What the library's pipe joins instead of the real streams: never emits a message, takes and
 * drops what it is sent (nothing: the other stand-in emits nothing), closes when end() is
 * called, and passes an abort on to the real stream.
 */
class StandIn extends EventTarget {
  real?: SpliceStream;
  writeStatus = "writable";
  status = "open";

  send(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.writeStatus = "closed";
  }

  abort(err: Error): void {
    this.real?.abort(err);
    this.end(err);
  }

  end(error?: Error): void {
    if (this.status === "closed") return;
    this.status = "closed";
    this.writeStatus = "closed";
    const evt = new Event("close") as Event & { error?: Error };
    if (error) evt.error = error;
    this.dispatchEvent(evt);
  }
}
