// The shared memory between the main thread and the engine's worker: a stop flag and a
// single-producer/single-consumer ring of adoption commands. The main thread writes an entry,
// publishes it by bumping HEAD, then writes the eventfd the worker's epoll waits on; the worker
// consumes up to HEAD and bumps TAIL. One entry per free slot exists at most (a slot returns to
// the free list only after the worker reported it done), so the ring can never overflow.

export const CTRL_STOP = 0;
export const CTRL_HEAD = 1;
export const CTRL_TAIL = 2;
export const CTRL_WORDS = 4;

/** Entry: slot, fd of side A, fd of side B, pipe A->B read/write, pipe B->A read/write. */
export const ENTRY_WORDS = 7;

export function ringWords(maxPairs: number): number {
  return CTRL_WORDS + maxPairs * ENTRY_WORDS;
}

/**
 * After the ring: bytes moved so far per direction of each slot (Float64, written by the worker,
 * read by the main thread at metrics scrape time; aligned 8-byte stores do not tear on the
 * platforms Bun supports).
 */
export function bytesOffset(maxPairs: number): number {
  return Math.ceil((ringWords(maxPairs) * 4) / 8) * 8;
}

export function sharedBytes(maxPairs: number): number {
  return bytesOffset(maxPairs) + maxPairs * 2 * 8;
}

/** Done reasons, as sent by the worker (numbers: cheap to post). */
export const DONE_CLEAN = 0;
export const DONE_RESET = 1;
export const DONE_STOPPED = 2;

/** Message from the worker: [slot, reason, bytesAtoB, bytesBtoA, errno]. */
export type DoneMessage = [number, number, number, number, number];

export interface WorkerInit {
  sab: SharedArrayBuffer;
  maxPairs: number;
  eventFd: number;
}
