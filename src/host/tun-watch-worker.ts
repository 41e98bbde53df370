// The TUN readiness watcher's thread: blocks in poll(2) on the TUN fd (and an eventfd that
// stops it) and tells the main thread "packets wait" through a shared word. It never reads a
// packet: the main thread drains the device itself (the tunnel streams live there), then re-arms.
//
// Shared word ctrl[STATE]: ARMED (1) = poll the device; SIGNALLED (2) = the main thread drains,
// sleep until it re-arms. ctrl[STOP] = 1: exit.

import { ptr } from "bun:ffi";
import { EINTR, POLLIN, tunLibc } from "./tun-libc.ts";
import { ARMED, SIGNALLED, STATE, STOP, type WatchInit } from "./tun-watch-layout.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<WatchInit>) => {
  const { fd, stopFd, sab } = ev.data;
  const loaded = tunLibc();
  if (!loaded) {
    self.postMessage({ fatal: "libc not reachable through bun:ffi" });
    return;
  }
  const { libc, errno } = loaded;
  const ctrl = new Int32Array(sab);
  // struct pollfd { int fd; short events; short revents; } x 2
  const fds = new Int32Array(4);
  const fdsView = new Int16Array(fds.buffer);
  fds[0] = fd;
  fds[2] = stopFd;
  fdsView[2] = POLLIN;
  fdsView[6] = POLLIN;
  const fdsPtr = ptr(fds);
  for (;;) {
    while (Atomics.load(ctrl, STATE) === SIGNALLED && Atomics.load(ctrl, STOP) === 0) Atomics.wait(ctrl, STATE, SIGNALLED);
    if (Atomics.load(ctrl, STOP) !== 0) break;
    fdsView[3] = 0;
    fdsView[7] = 0;
    const n = libc.poll(fdsPtr, 2, -1);
    if (n < 0) {
      if (errno() === EINTR) continue;
      self.postMessage({ fatal: `poll failed: errno ${errno()}` });
      return;
    }
    if (fdsView[7] !== 0 || Atomics.load(ctrl, STOP) !== 0) break;
    // Readable, or an error/hang-up condition the main thread's read will report.
    if (fdsView[3] !== 0 && Atomics.compareExchange(ctrl, STATE, ARMED, SIGNALLED) === ARMED) Atomics.notify(ctrl, STATE);
  }
  self.postMessage({ stopped: true });
};
