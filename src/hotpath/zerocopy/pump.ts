// Moving bytes for one direction of one adopted pair: socket -> pipe -> socket with splice(2),
// so payload pages never enter user space. Runs inside the engine's worker.
//
// The sockets are registered edge-triggered, so a direction may only stop when a later edge is
// guaranteed to wake it: either the source said EAGAIN (or EOF, or the pipe was full) AND the pipe
// is empty, or the destination said EAGAIN with bytes still in the pipe (its EPOLLOUT edge comes).
// splice(sock -> pipe) returns EAGAIN for "pipe full" as well as "socket empty"; the loop only
// relies on that EAGAIN when the pipe is empty, where it can only mean "socket empty".

import { EAGAIN, EINTR, type Libc, SHUT_WR, SPLICE_F_MOVE, SPLICE_F_NONBLOCK } from "./libc.ts";

const FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

/** Per-slot state of the worker, as parallel typed arrays (no object per pair or per event). */
export class Pairs {
  /** fd[slot*2 + side]: side 0 = A (client), 1 = B (upstream). */
  readonly fd: Int32Array;
  /** Direction d carries side d -> side 1-d through pipe d. */
  readonly pipeR: Int32Array;
  readonly pipeW: Int32Array;
  readonly pipeCap: Int32Array;
  readonly inPipe: Int32Array;
  /** Source of direction d reached EOF. */
  readonly eof: Uint8Array;
  /** Destination of direction d got its FIN (shutdown SHUT_WR). */
  readonly shut: Uint8Array;
  readonly bytes: Float64Array;
  readonly live: Uint8Array;
  /** First errno that failed the pair, 0 if none. */
  readonly err: Int32Array;
  /** `bytes` may live in shared memory so the main thread can read progress. */
  constructor(maxPairs: number, bytes?: Float64Array) {
    const n = maxPairs * 2;
    this.fd = new Int32Array(n).fill(-1);
    this.pipeR = new Int32Array(n).fill(-1);
    this.pipeW = new Int32Array(n).fill(-1);
    this.pipeCap = new Int32Array(n);
    this.inPipe = new Int32Array(n);
    this.eof = new Uint8Array(n);
    this.shut = new Uint8Array(n);
    this.bytes = bytes ?? new Float64Array(n);
    this.live = new Uint8Array(maxPairs);
    this.err = new Int32Array(maxPairs);
  }
}

/** pump() results. */
export const PUMP_IDLE = 0; // waiting for an edge
export const PUMP_MORE = 1; // round budget spent while still moving: run again soon
export const PUMP_FAIL = 2; // a socket failed; p.err holds errno

/**
 * Move what can be moved in direction d = slot*2 + side, for at most `rounds` rounds (fairness
 * between pairs: one elephant must not starve the rest of the loop).
 */
export function pump(p: Pairs, libc: Libc, errno: () => number, slot: number, side: number, rounds: number): number {
  const d = slot * 2 + side;
  const src = p.fd[d]!;
  const dst = p.fd[slot * 2 + (1 - side)]!;
  const pr = p.pipeR[d]!;
  const pw = p.pipeW[d]!;
  const cap = p.pipeCap[d]!;
  for (let i = 0; i < rounds; i++) {
    let moved = false;
    let srcBlocked = false;
    if (p.eof[d] === 0 && p.inPipe[d]! < cap) {
      const pipeWasEmpty = p.inPipe[d] === 0;
      const n = libc.splice(src, null, pw, null, cap - p.inPipe[d]!, FLAGS);
      if (n > 0) {
        p.inPipe[d] = p.inPipe[d]! + n;
        moved = true;
      } else if (n === 0) {
        p.eof[d] = 1;
        moved = true;
      } else {
        const e = errno();
        // With bytes in the pipe, EAGAIN may mean "pipe full" (its slots, not its bytes, ran
        // out): only an empty pipe makes it a definite "socket empty".
        if (e === EAGAIN) srcBlocked = pipeWasEmpty;
        else if (e !== EINTR) return fail(p, slot, e);
      }
    }
    if (p.inPipe[d]! > 0) {
      const n = libc.splice(pr, null, dst, null, p.inPipe[d]!, FLAGS);
      if (n > 0) {
        p.inPipe[d] = p.inPipe[d]! - n;
        p.bytes[d] = p.bytes[d]! + n;
        moved = true;
      } else if (n < 0) {
        const e = errno();
        if (e === EAGAIN) return PUMP_IDLE; // EPOLLOUT edge on dst wakes us
        if (e !== EINTR) return fail(p, slot, e);
      }
    }
    if (p.eof[d] === 1 && p.inPipe[d] === 0) {
      if (p.shut[d] === 0) {
        p.shut[d] = 1;
        // ENOTCONN here means the peer is gone entirely; the other direction reports it.
        libc.shutdown(dst, SHUT_WR);
      }
      return PUMP_IDLE;
    }
    if (!moved || (srcBlocked && p.inPipe[d] === 0)) return PUMP_IDLE;
  }
  return PUMP_MORE;
}

function fail(p: Pairs, slot: number, e: number): number {
  if (p.err[slot] === 0) p.err[slot] = e;
  return PUMP_FAIL;
}

/** Both directions delivered their FIN: the pair is finished. */
export function finished(p: Pairs, slot: number): boolean {
  return p.shut[slot * 2] === 1 && p.shut[slot * 2 + 1] === 1;
}
