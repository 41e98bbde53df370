// The words the TUN watcher and the main thread share (see tun-watch-worker.ts).
export const STATE = 0;
export const STOP = 1;
export const ARMED = 1;
export const SIGNALLED = 2;
export const CTRL_WORDS = 2;

export interface WatchInit {
  fd: number;
  stopFd: number;
  sab: SharedArrayBuffer;
}
