// Finding where a chunked body ends, without copying or decoding it: the bytes are forwarded as
// they came, and this state machine (one small object per connection direction, reused) only
// watches them go by. It accepts chunk extensions and trailers, and rejects sizes that are not
// hex or overflow, so a malformed body cannot desynchronise the next message on the connection.

const CR = 13;
const LF = 10;

const S_SIZE = 0; // reading hex digits of a chunk size
const S_EXT = 1; // after the size: extension, until LF
const S_DATA = 2; // `remaining` data bytes
const S_DATA_CR = 3; // CR after the data
const S_DATA_LF = 4; // LF after the data
const S_TRAILER_START = 5; // start of a trailer line (or the final blank line)
const S_TRAILER = 6; // inside a trailer line, until LF
const S_FINAL_LF = 7; // CR seen at a line start: the final LF follows
const S_DONE = 8;

/** A chunk size larger than this (2^48) is refused rather than risking precision loss. */
const MAX_CHUNK = 2 ** 48;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

export class ChunkedScanner {
  state = S_SIZE;
  remaining = 0;
  digits = 0;

  reset(): void {
    this.state = S_SIZE;
    this.remaining = 0;
    this.digits = 0;
  }

  get done(): boolean {
    return this.state === S_DONE;
  }

  /**
   * Feed buf[start, end). Returns the index just past the body's last byte when the body ends
   * within this range, CHUNKED_MORE when it needs more bytes, CHUNKED_ERROR when malformed.
   */
  scan(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case S_SIZE: {
          const v = hexValue(c);
          if (v >= 0) {
            this.remaining = this.remaining * 16 + v;
            if (++this.digits > 12 || this.remaining > MAX_CHUNK) return CHUNKED_ERROR;
            i++;
            break;
          }
          if (this.digits === 0) return CHUNKED_ERROR;
          if (c === LF) {
            this.state = this.remaining === 0 ? S_TRAILER_START : S_DATA;
            this.digits = 0;
            i++;
            break;
          }
          if (c === CR || c === 59 || c === 32 || c === 9) {
            this.state = S_EXT;
            i++;
            break;
          }
          return CHUNKED_ERROR;
        }
        case S_EXT:
          if (c === LF) {
            this.state = this.remaining === 0 ? S_TRAILER_START : S_DATA;
            this.digits = 0;
          } else if (c < 9 || (c > 13 && c < 32) || c === 127) return CHUNKED_ERROR;
          i++;
          break;
        case S_DATA: {
          const take = Math.min(this.remaining, end - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = S_DATA_CR;
          break;
        }
        case S_DATA_CR:
          if (c === CR) {
            this.state = S_DATA_LF;
            i++;
          } else if (c === LF) {
            this.state = S_SIZE;
            i++;
          } else return CHUNKED_ERROR;
          break;
        case S_DATA_LF:
          if (c !== LF) return CHUNKED_ERROR;
          this.state = S_SIZE;
          i++;
          break;
        case S_TRAILER_START:
          if (c === LF) {
            this.state = S_DONE;
            return i + 1;
          }
          this.state = c === CR ? S_FINAL_LF : S_TRAILER;
          i++;
          break;
        case S_FINAL_LF:
          if (c !== LF) return CHUNKED_ERROR;
          this.state = S_DONE;
          return i + 1;
        case S_TRAILER:
          if (c === LF) this.state = S_TRAILER_START;
          i++;
          break;
        default:
          return i;
      }
    }
    return CHUNKED_MORE;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
