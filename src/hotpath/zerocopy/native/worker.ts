// The native engine's worker thread: it links the C loop compiled on the main thread (compile.ts)
// and stays inside nf_run(), which forwards every adopted pair with no JS per message. It comes
// back here only for work per connection: adopting the pairs queued in the shared ring (the
// eventfd woke it), reporting finished pairs (one postMessage per batch), and stopping.

import { linkSymbols, ptr, type Pointer } from "bun:ffi";
import { bytesOffset, CTRL_HEAD, CTRL_STOP, CTRL_TAIL, CTRL_WORDS, ENTRY_WORDS } from "../layout.ts";
import { NATIVE_SYMBOLS, type NativeLoop, type NativeSymbolName } from "./compile.ts";

export interface NativeWorkerInit {
  sab: SharedArrayBuffer;
  maxPairs: number;
  eventFd: number;
  loop: NativeLoop;
  maxPiped: number;
  pipeBytes: number;
}

/** nf_run() result: done records (r >> 1), and bit 0 = the eventfd fired; -1 = fatal. */
const RUN_FATAL = -1;

declare const self: Worker;

self.onmessage = (ev: MessageEvent<NativeWorkerInit>) => {
  try {
    run(ev.data);
  } catch (err) {
    self.postMessage({ fatal: String(err) });
  }
};

function run(init: NativeWorkerInit): void {
  const defs = {} as { [K in NativeSymbolName]: (typeof NATIVE_SYMBOLS)[K] & { ptr: Pointer } };
  for (const name of Object.keys(NATIVE_SYMBOLS) as NativeSymbolName[]) {
    (defs as Record<string, unknown>)[name] = { ...NATIVE_SYMBOLS[name], ptr: init.loop[name] as Pointer };
  }
  const nf = linkSymbols(defs).symbols;
  const max = init.maxPairs;
  const ctrl = new Int32Array(init.sab);
  const bytes = new Float64Array(init.sab, bytesOffset(max), max * 2);
  const done = new Int32Array(max * 3);
  const s = nf.nf_create(max, init.maxPiped, init.pipeBytes, init.eventFd, ptr(bytes), ptr(done)) as Pointer | null;
  if (s === null) {
    self.postMessage({ fatal: "nf_create failed (out of memory or fds)" });
    return;
  }
  // The engine refuses pairs until this arrives (it starts the worker on the first hand-over).
  self.postMessage({ ready: true });

  /** Post the first n done records as one flat [slot, reason, AtoB, BtoA, errno, ...] array. */
  const report = (n: number): void => {
    if (n <= 0) return;
    const out = new Array<number>(n * 5);
    for (let i = 0; i < n; i++) {
      const slot = done[i * 3]!;
      out[i * 5] = slot;
      out[i * 5 + 1] = done[i * 3 + 1]!;
      out[i * 5 + 2] = bytes[slot * 2]!;
      out[i * 5 + 3] = bytes[slot * 2 + 1]!;
      out[i * 5 + 4] = done[i * 3 + 2]!;
    }
    self.postMessage(out);
  };

  const adoptPending = (): void => {
    nf.nf_clear_done(s);
    let tail = Atomics.load(ctrl, CTRL_TAIL);
    const head = Atomics.load(ctrl, CTRL_HEAD);
    let n = 0;
    while (tail !== head) {
      const at = CTRL_WORDS + (tail % max) * ENTRY_WORDS;
      n = nf.nf_add(s, ctrl[at]!, ctrl[at + 1]!, ctrl[at + 2]!);
      tail++;
    }
    Atomics.store(ctrl, CTRL_TAIL, tail);
    report(n);
  };

  for (;;) {
    const r = nf.nf_run(s);
    if (r === RUN_FATAL) {
      self.postMessage({ fatal: "epoll_wait failed in the native flow loop" });
      return;
    }
    report(r >> 1);
    if ((r & 1) === 0) continue;
    adoptPending();
    if (Atomics.load(ctrl, CTRL_STOP) !== 0) {
      report(nf.nf_stop(s));
      self.postMessage({ stopped: true });
      return;
    }
  }
}
