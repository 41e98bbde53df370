// QUIC write coalescing (src/tunnel/quic-send.ts) on a stand-in for libp2p-quic's QuicStream and
// its native stream: one native write in flight, the rest queued and joined, 'drain' at the high
// water mark, close after the last write, reset and write failures settle a waiting close.
import { expect, test } from "bun:test";
import { Uint8ArrayList } from "uint8arraylist";
import { installQuicWriteCoalescing, QUIC_NATIVE, QUIC_WRITE_HIGH_WATER } from "../../src/tunnel/quic-send.ts";

class FakeNative {
  writes: Uint8Array[] = [];
  finished = false;
  private done: { resolve: () => void; reject: (e: Error) => void }[] = [];
  write(data: Uint8Array): Promise<void> {
    this.writes.push(data.slice());
    return new Promise((resolve, reject) => this.done.push({ resolve, reject }));
  }
  /** Completes the oldest native write. */
  complete(): void {
    this.done.shift()!.resolve();
  }
  fail(err: Error): void {
    this.done.shift()!.reject(err);
  }
  get inFlight(): number {
    return this.done.length;
  }
}

class FakeStream {
  events: string[] = [];
  aborted: Error | undefined;
  resets = 0;
  closeWrites = 0;
  [QUIC_NATIVE]: FakeNative;
  constructor(native: FakeNative) {
    this[QUIC_NATIVE] = native;
  }
  sendData(_data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
    throw new Error("the original sendData must not run for a stream with a native stream");
  }
  async sendCloseWrite(): Promise<void> {
    this.closeWrites++;
    (this[QUIC_NATIVE] as FakeNative).finished = true;
  }
  sendReset(): void {
    this.resets++;
  }
  safeDispatchEvent(type: string): void {
    this.events.push(type);
  }
  abort(err: Error): void {
    this.aborted = err;
    (this as unknown as { sendReset(): void }).sendReset();
  }
}
installQuicWriteCoalescing(FakeStream.prototype as unknown as Record<PropertyKey, unknown>);

const bytes = (n: number, fill: number) => new Uint8ArrayList(new Uint8Array(n).fill(fill));
const tick = () => new Promise((r) => setTimeout(r, 0));

test("one native write in flight; what arrives meanwhile goes out joined in the next write", async () => {
  const native = new FakeNative();
  const s = new FakeStream(native);
  expect(s.sendData(bytes(10, 1)).canSendMore).toBe(true);
  expect(s.sendData(bytes(20, 2)).canSendMore).toBe(true);
  expect(s.sendData(bytes(30, 3)).canSendMore).toBe(true);
  expect(native.inFlight).toBe(1);
  expect(native.writes.map((w) => w.byteLength)).toEqual([10]);
  native.complete();
  await tick();
  expect(native.writes.map((w) => w.byteLength)).toEqual([10, 50]);
  expect([...native.writes[1]!.subarray(18, 22)]).toEqual([2, 2, 3, 3]);
  native.complete();
  await tick();
  expect(native.inFlight).toBe(0);
  expect(s.events).toEqual([]); // never blocked: no 'drain' owed
});

test("past the high water mark the sender is told to wait and gets 'drain' when a write takes the queue", async () => {
  const native = new FakeNative();
  const s = new FakeStream(native);
  s.sendData(bytes(1, 0)); // in flight
  const chunk = 64 * 1024;
  let more = true;
  let queued = 0;
  while (more) {
    more = s.sendData(bytes(chunk, 7)).canSendMore;
    queued += chunk;
  }
  expect(queued).toBe(QUIC_WRITE_HIGH_WATER);
  expect(s.events).toEqual([]);
  native.complete();
  await tick();
  expect(s.events).toEqual(["drain"]);
  expect(native.writes[1]!.byteLength).toBe(queued);
});

test("close waits for the last native write before closing the write side", async () => {
  const native = new FakeNative();
  const s = new FakeStream(native);
  s.sendData(bytes(100, 1));
  s.sendData(bytes(100, 2));
  const closed = s.sendCloseWrite();
  await tick();
  expect(native.finished).toBe(false);
  native.complete(); // first write; the queued one starts
  await tick();
  expect(native.finished).toBe(false);
  native.complete();
  await closed;
  expect(native.finished).toBe(true);
  expect(native.writes.map((w) => w.byteLength)).toEqual([100, 100]);
});

test("a reset drops the queue and releases a waiting close", async () => {
  const native = new FakeNative();
  const s = new FakeStream(native);
  s.sendData(bytes(100, 1));
  s.sendData(bytes(100, 2));
  const closed = s.sendCloseWrite();
  s.sendReset();
  await closed;
  expect(s.resets).toBe(1);
  native.complete(); // the write that was in flight ends: nothing queued goes out
  await tick();
  expect(native.writes.length).toBe(1);
});

test("a failed native write aborts the stream and releases a waiting close", async () => {
  const native = new FakeNative();
  const s = new FakeStream(native);
  s.sendData(bytes(100, 1));
  s.sendData(bytes(100, 2));
  const closed = s.sendCloseWrite();
  native.fail(new Error("stopped by peer"));
  await closed;
  expect(s.aborted?.message).toBe("stopped by peer");
  expect(native.writes.length).toBe(1);
});
