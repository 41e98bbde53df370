// The engine's worker thread: one blocking epoll loop that owns every adopted pair. The main
// thread's event loop never blocks on it; commands arrive through the shared ring (layout.ts)
// plus an eventfd wake-up, results leave with postMessage (one per finished pair).

import { ptr } from "bun:ffi";
import {
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLET,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  EINTR,
  F_GETPIPE_SZ,
  loadLibc,
  SO_LINGER,
  SOL_SOCKET,
} from "./libc.ts";
import { bytesOffset, CTRL_HEAD, CTRL_STOP, CTRL_TAIL, CTRL_WORDS, DONE_CLEAN, DONE_RESET, DONE_STOPPED, ENTRY_WORDS, type WorkerInit } from "./layout.ts";
import { finished, Pairs, pump, PUMP_FAIL, PUMP_MORE } from "./pump.ts";

/** Events taken per epoll_wait. */
const EVENTS_PER_WAIT = 256;
/** Splice rounds per direction per wake-up before yielding to other pairs. */
const ROUNDS_PER_WAKE = 8;
/** epoll data value of the eventfd; pairs use slot*2+side+1. */
const WAKE_TOKEN = 0;

declare const self: Worker;

const { libc, errno } = loadLibc();

self.onmessage = (ev: MessageEvent<WorkerInit>) => {
  run(ev.data);
};

function run(init: WorkerInit): void {
  const ctrl = new Int32Array(init.sab);
  const p = new Pairs(init.maxPairs, new Float64Array(init.sab, bytesOffset(init.maxPairs), init.maxPairs * 2));
  const ep = libc.epoll_create1(0o2000000);
  if (ep < 0) {
    self.postMessage({ fatal: `epoll_create1 failed: errno ${errno()}` });
    return;
  }
  const evBuf = new Uint8Array(EPOLL_EVENT_SIZE * EVENTS_PER_WAIT);
  const evView = new DataView(evBuf.buffer);
  const evPtr = ptr(evBuf);
  const one = new Uint8Array(EPOLL_EVENT_SIZE);
  const oneView = new DataView(one.buffer);
  const onePtr = ptr(one);
  const u64 = new BigUint64Array(1);
  const u64Ptr = ptr(u64);
  const linger = new Int32Array([1, 0]);
  const lingerPtr = ptr(linger);
  // Pairs whose last pump ran out of rounds while still moving: pumped again without waiting.
  const again: number[] = [];
  const inAgain = new Uint8Array(init.maxPairs);
  let live = 0;

  const add = (fd: number, token: number): boolean => {
    oneView.setUint32(0, (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) >>> 0, true);
    oneView.setUint32(EPOLL_DATA_OFFSET, token, true);
    oneView.setUint32(EPOLL_DATA_OFFSET + 4, 0, true);
    return libc.epoll_ctl(ep, EPOLL_CTL_ADD, fd, onePtr) === 0;
  };
  if (!add(init.eventFd, WAKE_TOKEN)) {
    self.postMessage({ fatal: `epoll_ctl(eventfd) failed: errno ${errno()}` });
    return;
  }
  // The engine refuses pairs until this arrives (it starts the worker on the first hand-over).
  self.postMessage({ ready: true });

  /** Close every fd of the pair (RST first when it failed or the engine stops) and report. */
  const release = (slot: number, reason: number): void => {
    p.live[slot] = 0;
    live--;
    for (let side = 0; side < 2; side++) {
      const d = slot * 2 + side;
      // Deregister explicitly: close() only removes it from the epoll set when ours is the last
      // reference to the socket, and a caller that kept its Bun socket open would leave a stale
      // registration pointing at a reused slot.
      libc.epoll_ctl(ep, EPOLL_CTL_DEL, p.fd[d]!, onePtr);
      if (reason !== DONE_CLEAN) libc.setsockopt(p.fd[d]!, SOL_SOCKET, SO_LINGER, lingerPtr, 8);
      libc.close(p.fd[d]!);
      libc.close(p.pipeR[d]!);
      libc.close(p.pipeW[d]!);
      p.fd[d] = -1;
      p.pipeR[d] = -1;
      p.pipeW[d] = -1;
    }
    self.postMessage([slot, reason, p.bytes[slot * 2]!, p.bytes[slot * 2 + 1]!, p.err[slot]!]);
  };

  const service = (slot: number): void => {
    if (p.live[slot] === 0) return;
    const a = pump(p, libc, errno, slot, 0, ROUNDS_PER_WAKE);
    const b = a === PUMP_FAIL ? PUMP_FAIL : pump(p, libc, errno, slot, 1, ROUNDS_PER_WAKE);
    if (a === PUMP_FAIL || b === PUMP_FAIL) return release(slot, DONE_RESET);
    if (finished(p, slot)) return release(slot, DONE_CLEAN);
    if ((a === PUMP_MORE || b === PUMP_MORE) && inAgain[slot] === 0) {
      inAgain[slot] = 1;
      again.push(slot);
    }
  };

  const adoptPending = (register: boolean): void => {
    let tail = Atomics.load(ctrl, CTRL_TAIL);
    const head = Atomics.load(ctrl, CTRL_HEAD);
    while (tail !== head) {
      const at = CTRL_WORDS + (tail % init.maxPairs) * ENTRY_WORDS;
      const slot = ctrl[at]!;
      for (let side = 0; side < 2; side++) {
        const d = slot * 2 + side;
        p.fd[d] = ctrl[at + 1 + side]!;
        p.pipeR[d] = ctrl[at + 3 + side * 2]!;
        p.pipeW[d] = ctrl[at + 4 + side * 2]!;
        p.pipeCap[d] = libc.fcntl(p.pipeR[d]!, F_GETPIPE_SZ, 0);
        p.inPipe[d] = 0;
        p.eof[d] = 0;
        p.shut[d] = 0;
        p.bytes[d] = 0;
      }
      p.err[slot] = 0;
      p.live[slot] = 1;
      live++;
      tail++;
      if (!register) continue;
      if (!add(p.fd[slot * 2]!, slot * 2 + 1) || !add(p.fd[slot * 2 + 1]!, slot * 2 + 2)) {
        p.err[slot] = errno();
        release(slot, DONE_RESET);
        continue;
      }
      // Bytes may already wait in the kernel (the edge happened before we registered).
      service(slot);
    }
    Atomics.store(ctrl, CTRL_TAIL, tail);
  };

  for (;;) {
    const n = libc.epoll_wait(ep, evPtr, EVENTS_PER_WAIT, again.length > 0 ? 0 : -1);
    if (n < 0 && errno() !== EINTR) {
      self.postMessage({ fatal: `epoll_wait failed: errno ${errno()}` });
      break;
    }
    for (let i = 0; i < n; i++) {
      const token = evView.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, true);
      if (token === WAKE_TOKEN) {
        libc.read(init.eventFd, u64Ptr, 8);
        if (Atomics.load(ctrl, CTRL_STOP) !== 0) return stopAll();
        adoptPending(true);
      } else {
        service((token - 1) >> 1);
      }
    }
    const k = again.length;
    for (let i = 0; i < k; i++) {
      const slot = again.shift()!;
      inAgain[slot] = 0;
      service(slot);
    }
  }

  function stopAll(): void {
    adoptPending(false); // adopted but not yet registered: closed and reported like the rest
    for (let slot = 0; slot < init.maxPairs; slot++) if (p.live[slot] === 1) release(slot, DONE_STOPPED);
    libc.close(ep);
    self.postMessage({ stopped: true, live });
  }
}
