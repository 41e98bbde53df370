// Reads one varint-delimited header off a libp2p stream and gives back whatever came after it;
// opens a stream with a lazy multistream-select (its lines are varint-delimited too). Runs once
// per stream, before any splicing, so a closure and a promise here are fine.
import type { Connection, Stream, StreamMessageEvent, StreamMuxer } from "@libp2p/interface";
import { splitDelimited } from "./codec.ts";
import { TunnelError } from "./errors.ts";

const EMPTY = new Uint8Array(0);

/**
 * Resolves with the decoded header. Bytes that arrived after it are put back at the front of the
 * stream's read buffer (`unshift`), where they wait until the next 'message' listener attaches,
 * so no byte of the payload is lost between the header exchange and the splice.
 */
export function readHeader<T>(stream: Stream, decodeBody: (body: Uint8Array) => T, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let buf: Uint8Array = EMPTY;
    let done = false;
    const finish = (err: unknown, value?: T) => {
      stream.removeEventListener("message", onMessage);
      stream.removeEventListener("close", onClose);
      stream.removeEventListener("remoteCloseWrite", onRemoteClose);
      clearTimeout(timer);
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(value as T);
    };
    const onMessage = (evt: StreamMessageEvent) => {
      const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
      buf = buf.length === 0 ? chunk : concat(buf, chunk);
      let parts: ReturnType<typeof splitDelimited>;
      let value: T;
      try {
        parts = splitDelimited(buf);
        if (!parts) return;
        value = decodeBody(parts.body);
      } catch (err) {
        finish(err);
        return;
      }
      if (parts.rest.length > 0) {
        try {
          stream.unshift(parts.rest);
        } catch (err) {
          finish(err);
          return;
        }
      }
      finish(undefined, value);
    };
    const onClose = () => finish(new TunnelError("CLOSED", `stream closed after ${buf.length} header bytes`));
    // The peer may send its header and close its side at once; buffered bytes are dispatched to a
    // new listener in a microtask, so judge a remote close only after that has happened.
    const onRemoteClose = () => setTimeout(onClose, 0);
    const timer = setTimeout(() => finish(new TunnelError("CLOSED", `no header within ${timeoutMs} ms`)), timeoutMs);
    stream.addEventListener("message", onMessage);
    stream.addEventListener("close", onClose);
    stream.addEventListener("remoteCloseWrite", onRemoteClose);
    if (stream.status !== "open") onClose();
    else if (stream.remoteWriteStatus === "closed") onRemoteClose();
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Sends a final header and closes our side; resets if the peer does not let it finish. */
export async function replyAndClose(stream: Stream, header: Uint8Array, timeoutMs = 2_000): Promise<void> {
  try {
    if (stream.status !== "open" || stream.writeStatus !== "writable") return;
    stream.send(header);
    await stream.close({ signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    stream.abort(err as Error);
  }
}

const MSS_PROTOCOL_ID = "/multistream/1.0.0";
const utf8 = new TextDecoder();
const lines = new Map<string, Uint8Array>();

/** multistream-select's opening for `protocol`: both lines varint-prefixed, in one buffer. */
function selectLines(protocol: string): Uint8Array {
  let out = lines.get(protocol);
  if (out === undefined) {
    const parts = [MSS_PROTOCOL_ID, protocol].map((l) => new TextEncoder().encode(`${l}\n`));
    out = new Uint8Array(parts.reduce((n, p) => n + 1 + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out[off++] = p.length; // both lines are shorter than 128 bytes: a one-byte varint
      out.set(p, off);
      off += p.length;
    }
    lines.set(protocol, out);
  }
  return out;
}

/**
 * A new stream on `conn` whose multistream-select lines are sent at once, ahead of whatever the
 * caller sends next, without waiting for the answer (go-libp2p's lazy select; any responder
 * reads exactly those lines and hands the rest to the protocol handler). libp2p 3.3's
 * newStream waits for the answer first (it ignores negotiateFully: false): a round trip per
 * stream. The caller must read the answer with readSelected() before its own reply. Falls back
 * to newStream (lazy: false, nothing to read) when the connection exposes no muxer.
 */
export async function newStreamLazy(
  conn: Connection,
  protocol: string,
  options: { runOnLimitedConnection: boolean; signal: AbortSignal },
): Promise<{ stream: Stream; lazy: boolean }> {
  const muxer = (conn as unknown as { muxer?: StreamMuxer }).muxer;
  if (muxer === undefined || typeof muxer.createStream !== "function" || conn.status !== "open") {
    return { stream: await conn.newStream(protocol, options), lazy: false };
  }
  const stream = await muxer.createStream({ signal: options.signal });
  stream.protocol = protocol;
  stream.send(selectLines(protocol));
  return { stream, lazy: true };
}

/** Reads the responder's two multistream-select lines; throws unless it selected `protocol`. */
export async function readSelected(stream: Stream, protocol: string, timeoutMs: number): Promise<void> {
  const line = (b: Uint8Array) => utf8.decode(b);
  const first = await readHeader(stream, line, timeoutMs);
  const second = first === `${MSS_PROTOCOL_ID}\n` ? await readHeader(stream, line, timeoutMs) : first;
  if (second !== `${protocol}\n`) throw new TunnelError("CLOSED", `peer did not select ${protocol} (answered ${JSON.stringify(second.trim())})`);
}
