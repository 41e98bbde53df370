// Reads one varint-delimited header off a libp2p stream and gives back whatever came after it.
// Runs once per stream, before any splicing, so a closure and a promise here are fine.
import type { Stream, StreamMessageEvent } from "@libp2p/interface";
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
