// Byte ranges waiting for a writable side, held by reference (the buffers Bun hands to data() are
// fresh per call and never reused, so keeping a view costs no copy). Used under backpressure,
// while an upstream connects, and for pipelined requests; empty in the common case.

import type { ByteStream } from "../../hotpath/index.ts";

export class ByteQueue {
  readonly bufs: Uint8Array[] = [];
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** Bytes queued. */
  bytes = 0;

  get empty(): boolean {
    return this.bufs.length === 0;
  }

  push(buf: Uint8Array, start: number, end: number): void {
    if (end <= start) return;
    this.bufs.push(buf);
    this.starts.push(start);
    this.ends.push(end);
    this.bytes += end - start;
  }

  unshift(buf: Uint8Array, start: number, end: number): void {
    if (end <= start) return;
    this.bufs.unshift(buf);
    this.starts.unshift(start);
    this.ends.unshift(end);
    this.bytes += end - start;
  }

  shift(): void {
    this.bytes -= this.ends[0]! - this.starts[0]!;
    this.bufs.shift();
    this.starts.shift();
    this.ends.shift();
  }

  /** The front range now starts at `start` (part of it was used). */
  advance(start: number): void {
    this.bytes -= start - this.starts[0]!;
    this.starts[0] = start;
  }

  clear(): void {
    this.bufs.length = 0;
    this.starts.length = 0;
    this.ends.length = 0;
    this.bytes = 0;
  }

  /**
   * Writes as much as `out` takes. Returns 1 when everything went, 0 when `out` is full (its
   * drain follows), -1 when `out` is closed.
   */
  flushTo(out: ByteStream): number {
    while (this.bufs.length > 0) {
      const s = this.starts[0]!;
      const e = this.ends[0]!;
      const n = out.write(this.bufs[0]!, s, e - s);
      if (n < 0) return -1;
      if (n < e - s) {
        this.advance(s + n);
        return 0;
      }
      this.shift();
    }
    return 1;
  }
}
