// A port of Go's math/rand default Source (rngSource in src/math/rand/rng.go) and of
// rand.Rand.Read, exact to the bit. EdgeMesh seeds it with md5(nodeName) and reads the Ed25519
// seed from it, so peer IDs of EdgeMesh nodes are only computable with this very generator.
// Used once per key derivation, never on a hot path, so BigInt is fine here.
import { RNG_COOKED_TEXT } from "./gorand-table.ts";

const LEN = 607;
const TAP = 273;
const MASK = (1n << 63n) - 1n;
const A = 48271;
const M = 2147483647; // 2^31 - 1
const Q = 44488;
const R = 3399;

let cooked: BigInt64Array | undefined;
function rngCooked(): BigInt64Array {
  if (!cooked) {
    const words = RNG_COOKED_TEXT.trim().split(/\s+/);
    if (words.length !== LEN) throw new Error(`rngCooked table has ${words.length} entries, want ${LEN}`);
    cooked = BigInt64Array.from(words, (w) => BigInt(w));
  }
  return cooked;
}

/** seed rng x[n+1] = 48271 * x[n] mod (2**31 - 1), in int32 arithmetic like Go's seedrand. */
function seedrand(x: number): number {
  const hi = Math.trunc(x / Q);
  const lo = x % Q;
  x = A * lo - R * hi;
  if (x < 0) x += M;
  return x;
}

/** Go's rand.New(rand.NewSource(seed)) restricted to what key derivation needs: Int63 and Read. */
export class GoRand {
  #tap = 0;
  #feed = LEN - TAP;
  #vec = new BigInt64Array(LEN);
  #readVal = 0n;
  #readPos = 0;

  constructor(seed: bigint) {
    const table = rngCooked();
    let s = seed % BigInt(M); // BigInt % keeps the dividend's sign, like Go
    if (s < 0n) s += BigInt(M);
    if (s === 0n) s = 89482311n;
    let x = Number(s);
    for (let i = -20; i < LEN; i++) {
      x = seedrand(x);
      if (i >= 0) {
        let u = BigInt(x) << 40n;
        x = seedrand(x);
        u ^= BigInt(x) << 20n;
        x = seedrand(x);
        u ^= BigInt(x);
        u ^= table[i]!;
        this.#vec[i] = u & MASK;
      }
    }
  }

  /** A non-negative 63-bit value, as Go's Int63. */
  int63(): bigint {
    if (--this.#tap < 0) this.#tap += LEN;
    if (--this.#feed < 0) this.#feed += LEN;
    const x = (this.#vec[this.#feed]! + this.#vec[this.#tap]!) & MASK;
    this.#vec[this.#feed] = x;
    return x;
  }

  /** Fills `p` like Go's rand.Rand.Read: 7 bytes per Int63, least significant byte first. */
  read(p: Uint8Array): Uint8Array {
    let pos = this.#readPos;
    let val = this.#readVal;
    for (let n = 0; n < p.length; n++) {
      if (pos === 0) {
        val = this.int63();
        pos = 7;
      }
      p[n] = Number(val & 0xffn);
      val >>= 8n;
      pos--;
    }
    this.#readPos = pos;
    this.#readVal = val;
    return p;
  }
}
