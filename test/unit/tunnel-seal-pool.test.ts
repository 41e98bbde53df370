// The reuse rules of src/tunnel/seal-buffers.ts: what Bun's node:net socket does with a buffer
// it is given (the fact the pool's "done" line rests on), the pool's accounting against a stand-in
// stack, and the sealed-bytes count the Edge CNI's slabs wait for. End to end (real tunnels, a
// backed-up socket, 100 MB checked byte for byte): test/integration/tunnel-cni-reuse.test.ts.
import { describe, expect, test } from "bun:test";
import net from "node:net";
import { Uint8ArrayList } from "uint8arraylist";
import { noteSealed, pendingBelow, SEAL_POOL_MAX_BYTES, SEAL_POOL_STATS, SEALED_BUFFERS, SealPool, watchSealed } from "../../src/tunnel/seal-buffers.ts";

describe("Bun's node:net socket and the buffers written to it", () => {
  test("a write the kernel cannot take is copied; one queued behind it is kept by reference; writableLength counts both until done", async () => {
    const N = 8 * 1024 * 1024; // far more than the kernel's socket buffers
    let result: { received: number; first: boolean; secondMutated: boolean } | undefined;
    const server = net.createServer((c) => {
      c.pause(); // no reading until the writer has changed its buffers
      const got: Buffer[] = [];
      c.on("data", (d: Buffer) => got.push(d));
      setTimeout(() => c.resume(), 200);
      c.on("end", () => {
        const all = Buffer.concat(got);
        result = { received: all.length, first: all.subarray(0, N).every((x) => x === 0xaa), secondMutated: all.subarray(N).every((x) => x === 0x22) };
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const s = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    await new Promise((r) => s.once("connect", r));
    const a = Buffer.alloc(N, 0xaa);
    const b = Buffer.alloc(N, 0xbb);
    expect(s.write(a)).toBe(false);
    expect(s.writableLength).toBe(N); // copied natively, still counted until its callback
    expect(s.write(b)).toBe(false);
    expect(s.writableLength).toBe(2 * N);
    a.fill(0x11);
    b.fill(0x22);
    s.end();
    const end = Date.now() + 10_000;
    while (result === undefined && Date.now() < end) await Bun.sleep(10);
    server.close();
    expect(result).toEqual({ received: 2 * N, first: true, secondMutated: true });
  });
});

/** A stand-in for the stack under Noise: one layer with a write buffer over a socket. */
function stack() {
  const sock = { writableLength: 0, write: () => true };
  const conn = { writeBufferLength: 0, socket: sock };
  const pending = pendingBelow(conn, () => false)!;
  return { sock, conn, pending };
}

describe("SealPool", () => {
  test("a buffer comes back only once everything up to its end has left the layers below", () => {
    const { sock, conn, pending } = stack();
    const pool = new SealPool(pending);
    const b1 = pool.take(10_000);
    expect(SEALED_BUFFERS.has(b1.buffer)).toBe(true);
    pool.handed(b1, 10_000);
    sock.writableLength = 10_000; // the socket still holds it
    const b2 = pool.take(10_000);
    expect(b2).not.toBe(b1);
    pool.handed(b2, 10_000);
    conn.writeBufferLength = 10_000; // b2 waits in the connection's write buffer
    expect(pool.take(10_000)).not.toBe(b1);
    sock.writableLength = 0; // b1 is gone, b2 still waits
    const b3 = pool.take(10_000);
    expect(b3).toBe(b1);
    expect(SEALED_BUFFERS.has(b3.buffer)).toBe(true); // registered again for the pnet layer
  });

  test("bytes others wrote into the same layers only delay reuse", () => {
    const { sock, pending } = stack();
    const pool = new SealPool(pending);
    const b1 = pool.take(4000);
    pool.handed(b1, 4000);
    sock.writableLength = 100; // someone else's 100 bytes, ours are gone
    expect(pool.take(4000)).not.toBe(b1);
  });

  test("sizes: small batches share the smallest class; above the largest class a buffer is not pooled", () => {
    const { pending } = stack();
    const pool = new SealPool(pending);
    const small = pool.take(100);
    expect(small.length).toBe(2048);
    pool.handed(small, 100);
    expect(pool.take(1500)).toBe(small);
    const big = pool.take(SEAL_POOL_MAX_BYTES + 1);
    expect(big.length).toBe(SEAL_POOL_MAX_BYTES + 1);
    pool.handed(big, big.length);
    expect(pool.take(SEAL_POOL_MAX_BYTES + 1)).not.toBe(big);
  });

  test("counts reuse in SEAL_POOL_STATS and the most bytes seen pending", () => {
    const { sock, pending } = stack();
    const pool = new SealPool(pending);
    const before = { ...SEAL_POOL_STATS };
    const b = pool.take(3000);
    pool.handed(b, 3000);
    sock.writableLength = 3000;
    pool.take(3000);
    expect(SEAL_POOL_STATS.maxPendingSeen).toBeGreaterThanOrEqual(3000);
    sock.writableLength = 0;
    pool.take(3000);
    expect(SEAL_POOL_STATS.reused - before.reused).toBe(1);
    expect(SEAL_POOL_STATS.allocated - before.allocated).toBe(2);
  });

  test("free buffers of a size nobody asked for since the last idle check go back; others stay", () => {
    const { pending } = stack();
    const pool = new SealPool(pending);
    const b = pool.take(3000);
    pool.handed(b, 3000);
    const small = pool.take(100); // another class: finds b done, which goes to the free list
    pool.handed(small, 100);
    pool.trimIfIdle(); // b's size was asked for since the last look: kept
    pool.take(50_000); // finds small done
    const kept = pool.take(100);
    expect(kept).toBe(small);
    pool.handed(kept, 100);
    pool.take(50_000);
    pool.take(100);
    pool.trimIfIdle(); // 4 KiB not asked for since the last look: b goes
    expect(pool.take(3000)).not.toBe(b);
  });
});

describe("pendingBelow", () => {
  test("sums the write buffers of our layers and the socket's queue; undefined when the bottom is not a node:net socket", () => {
    const sock = { writableLength: 7, write: () => true };
    const tcp = { writeBufferLength: 5, socket: sock };
    const pnet = { writeBufferLength: 3, below: tcp };
    const isLayer = (s: unknown) => s === pnet;
    expect(pendingBelow(pnet, isLayer)!()).toBe(15);
    sock.writableLength = 0;
    expect(pendingBelow(pnet, isLayer)!()).toBe(8);
    // A relayed connection: the bottom is a yamux stream, which has no socket.
    expect(pendingBelow({ writeBufferLength: 0 }, () => false)).toBeUndefined();
    expect(pendingBelow({ writeBufferLength: 0, below: { writeBufferLength: 0 } }, () => true)).toBeUndefined();
  });
});

describe("watchSealed / noteSealed", () => {
  test("counts the sealed bytes of views of a watched buffer, in a list or alone; others are ignored", () => {
    const slab = new Uint8Array(1000);
    const w = watchSealed(slab.buffer);
    expect(watchSealed(slab.buffer)).toBe(w);
    w.sent += 300;
    noteSealed(new Uint8ArrayList(new Uint8Array(12), slab.subarray(0, 200), new Uint8Array(50)));
    expect(w.sealed).toBe(200);
    noteSealed(slab.subarray(200, 300));
    expect(w.sealed).toBe(300);
    noteSealed(new Uint8Array(500));
    expect(w.sealed).toBe(300);
  });
});
