// yamux frame decoding and dispatch without a generator, a list and four objects per frame.
//
// @chainsafe/libp2p-yamux 8 decodes every chunk the connection delivers through a generator
// (Decoder.emitFrames) over a Uint8ArrayList: per frame a header subarray, a header object, a
// sublist for the payload, a consume (another subarray), a { header, data } object, a trace
// argument built whether tracing is on or not (debugFrame: an object, an array and a filter),
// and a linear `streams.find` with a closure over every open stream (64 under the tunnel
// bench's load). Sending, sendFrame builds the same trace argument for every frame. With 1 KiB
// request/response that is paid once per request and per answer in each agent.
// When the decoder holds no partial frame and the chunk is one buffer (the usual case: the
// Noise layer below delivers whole messages, and our coalescing layer puts whole frames in
// them), frames are read in place: a data frame without flags for a known stream goes to the
// stream as YamuxStream.handleData would take it (window check, onData with a subarray of the
// chunk, sendWindowUpdate), a window update without flags to handleWindowUpdate. Streams are
// found through a map filled from the library's list on a miss and emptied by closeStream
// (yamux calls it on every stream's 'close'; stream ids are never reused). Everything else
// (flags, stream 0, unknown streams, bad frames, a frame split over chunks) hands the rest of
// the chunk, from that frame on, to the library's own onData, which decodes it as before.
// The library has no option for any of this, so this is the one place that adjusts it; like
// yamux-send.ts it patches the prototype once per process and fails loudly if it changed.
// tunnel-yamux-frames.test.ts compares what arrives with the library's decoder.
import { yamux } from "@chainsafe/libp2p-yamux";
import { multiaddrConnectionPair } from "@libp2p/utils";

/** yamux's header (frame.ts HEADER_LENGTH) and frame types (FrameType). */
const HEADER_BYTES = 12;
const FRAME_DATA = 0;
const FRAME_WINDOW_UPDATE = 1;
const TWO_POW_24 = 2 ** 24;

const PATCHED = Symbol.for("edgemesh.yamuxFrames");
/** The muxer's stream map (id -> stream), created on its first lookup. */
const BY_ID = Symbol("edgemesh.yamuxStreamsById");
/** The library's onData, kept under this symbol (tests compare with it). */
export const YAMUX_ORIGINAL_ON_DATA = Symbol.for("edgemesh.yamuxOriginalOnData");

/** The library's sendFrame, kept under this symbol (tests compare with it). */
export const YAMUX_ORIGINAL_SEND_FRAME = Symbol.for("edgemesh.yamuxOriginalSendFrame");

/** The stream fields the dispatch uses (public in YamuxStream, typed loosely here). */
interface StreamFields {
  streamId: number;
  recvWindowCapacity: number;
  onData(data: Uint8Array): void;
  sendWindowUpdate(): void;
  handleWindowUpdate(frame: { header: { type: number; flag: number; streamID: number; length: number } }): void;
}

/** The muxer fields the patch uses. */
interface PendingList {
  byteLength: number;
  subarray(begin: number, end: number): Uint8Array;
  constructor: unknown;
}

interface MuxerFields {
  [BY_ID]?: Map<number, StreamFields>;
  decoder: { buffer: PendingList };
  streams: StreamFields[];
  log: { trace: { enabled?: boolean } };
}

interface FrameHeader {
  type: number;
  flag: number;
  streamID: number;
  length: number;
}

interface SendFields extends MuxerFields {
  send(data: unknown): boolean;
}

/** encode.ts encodeHeader: version 0, type, flag, stream id, length (big-endian). */
function encodeHeader(h: FrameHeader): Uint8Array {
  const f = new Uint8Array(HEADER_BYTES);
  f[1] = h.type;
  f[2] = h.flag >>> 8;
  f[3] = h.flag;
  f[4] = h.streamID >>> 24;
  f[5] = h.streamID >>> 16;
  f[6] = h.streamID >>> 8;
  f[7] = h.streamID;
  f[8] = h.length >>> 24;
  f[9] = h.length >>> 16;
  f[10] = h.length >>> 8;
  f[11] = h.length;
  return f;
}

type OnData = (this: MuxerFields, buf: Uint8Array | { bufs: Uint8Array[]; byteLength: number }) => void;

/** The muxer's stream with this id, or undefined (then the library decides what the frame means). */
function streamById(m: MuxerFields, id: number): StreamFields | undefined {
  let map = m[BY_ID];
  if (map === undefined) m[BY_ID] = map = new Map();
  let s = map.get(id);
  if (s !== undefined) return s;
  const list = m.streams;
  for (let i = 0; i < list.length; i++) {
    if (list[i]!.streamId === id) {
      s = list[i]!;
      map.set(id, s);
      return s;
    }
  }
  return undefined;
}

/** Bytes still missing from the frame the library's decoder holds (header first, then payload). */
function missing(pending: PendingList): number {
  const have = pending.byteLength;
  if (have < HEADER_BYTES) return HEADER_BYTES - have;
  const h = pending.subarray(0, HEADER_BYTES); // a copy only when the header itself was split
  return h[1] === FRAME_DATA ? HEADER_BYTES + h[8]! * TWO_POW_24 + ((h[9]! << 16) | (h[10]! << 8) | h[11]!) - have : 0;
}

/**
 * Handles the frames of one chunk in order: a frame begun in an earlier chunk is completed
 * through the library's decoder, common frames are dispatched here, any other whole frame goes
 * alone through the library's onData, and a frame cut at the end is left to its decoder.
 */
function decodeChunk(m: MuxerFields, chunk: Uint8Array, original: OnData): void {
  const n = chunk.length;
  let off = 0;
  const pending = m.decoder.buffer;
  while (pending.byteLength > 0 && off < n) {
    const need = missing(pending);
    if (need <= 0) break; // cannot happen (the decoder consumes whole frames); the library decides
    const take = Math.min(need, n - off);
    original.call(m, chunk.subarray(off, off + take));
    off += take;
  }
  if (pending.byteLength > 0) {
    if (off < n) original.call(m, chunk.subarray(off));
    return;
  }
  while (n - off >= HEADER_BYTES) {
    const type = chunk[off + 1]!;
    const flag = (chunk[off + 2]! << 8) | chunk[off + 3]!;
    const id = chunk[off + 4]! * TWO_POW_24 + ((chunk[off + 5]! << 16) | (chunk[off + 6]! << 8) | chunk[off + 7]!);
    const length = chunk[off + 8]! * TWO_POW_24 + ((chunk[off + 9]! << 16) | (chunk[off + 10]! << 8) | chunk[off + 11]!);
    const end = type === FRAME_DATA ? off + HEADER_BYTES + length : off + HEADER_BYTES;
    if (end > n) break; // cut at the end of the chunk: the library's decoder keeps the part
    const common = chunk[off] === 0 && flag === 0 && id !== 0 && (type === FRAME_DATA || type === FRAME_WINDOW_UPDATE);
    const s = common ? streamById(m, id) : undefined;
    // Flags (SYN, ACK, FIN, RST), pings, go-aways, unknown streams, bad frames and a data frame
    // past the receive window (the library's error): the library's code, one frame.
    if (s === undefined || (type === FRAME_DATA && s.recvWindowCapacity < length)) {
      original.call(m, chunk.subarray(off, end));
      off = end;
      continue;
    }
    off = end; // as the library: the frame is consumed before it is handled
    if (type === FRAME_DATA) {
      // YamuxStream.handleData for a frame without flags.
      s.recvWindowCapacity -= length;
      s.onData(chunk.subarray(end - length, end));
      s.sendWindowUpdate();
    } else {
      s.handleWindowUpdate({ header: { type, flag, streamID: id, length } });
    }
  }
  if (off < n) original.call(m, chunk.subarray(off));
}

/** The YamuxMuxer prototype, from a throwaway muxer (the package exports no muxer class). */
function muxerPrototype(): Record<PropertyKey, unknown> {
  const [a, b] = multiaddrConnectionPair();
  const m = yamux({ enableKeepAlive: false })().createStreamMuxer(a);
  const proto = Object.getPrototypeOf(m) as Record<PropertyKey, unknown>;
  m.abort(new Error("prototype probe"));
  a.abort(new Error("prototype probe"));
  b.abort(new Error("prototype probe"));
  return proto;
}

/** Installs the decoder once per process (idempotent); returns true if active. */
export function installYamuxFrames(): boolean {
  const proto = muxerPrototypeCached ?? (muxerPrototypeCached = muxerPrototype());
  if (proto[PATCHED] === true) return true;
  const original = proto.onData as OnData;
  const closeStream = proto.closeStream as (this: MuxerFields, id: number) => void;
  if (typeof original !== "function" || typeof closeStream !== "function" || typeof proto.handleFrame !== "function" || typeof proto.sendFrame !== "function") {
    throw new Error("@chainsafe/libp2p-yamux changed (no YamuxMuxer.onData/closeStream/handleFrame/sendFrame): review src/tunnel/yamux-frames.ts");
  }
  proto.onData = function onData(this: MuxerFields, buf: Uint8Array | { bufs: Uint8Array[]; byteLength: number }) {
    if (this.log.trace.enabled === true) return original.call(this, buf);
    if (buf instanceof Uint8Array) return decodeChunk(this, buf, original);
    const bufs = buf.bufs; // several Noise messages of one socket read
    for (let i = 0; i < bufs.length; i++) decodeChunk(this, bufs[i]!, original);
  };
  // The library's sendFrame, less the trace argument it builds for every frame.
  const sendFrame = proto.sendFrame as (this: SendFields, header: FrameHeader, data?: Uint8Array) => boolean;
  proto.sendFrame = function sendFrameUntraced(this: SendFields, header: FrameHeader, data?: Uint8Array) {
    if (this.log.trace.enabled === true || (header.type === FRAME_DATA && data == null)) return sendFrame.call(this, header, data);
    const h = encodeHeader(header);
    if (header.type !== FRAME_DATA) return this.send(h);
    const List = this.decoder.buffer.constructor as new (...bufs: Uint8Array[]) => unknown;
    return this.send(new List(h, data!));
  };
  proto.closeStream = function closeStreamForget(this: MuxerFields, id: number) {
    this[BY_ID]?.delete(id);
    return closeStream.call(this, id);
  };
  proto[YAMUX_ORIGINAL_ON_DATA] = original;
  proto[YAMUX_ORIGINAL_SEND_FRAME] = sendFrame;
  proto[PATCHED] = true;
  return true;
}

let muxerPrototypeCached: Record<PropertyKey, unknown> | undefined;
