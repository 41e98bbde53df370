// yamux window updates as go-yamux sends them: only once half the receive window is consumed.
//
// @chainsafe/libp2p-yamux 8 answers every received data frame with a window update frame, which
// for 1 KiB request/response doubles the frames (and Noise messages, pnet XORs and socket
// writes) per round trip. go-yamux (EdgeMesh's side) waits until the consumed part reaches half
// of the window (stream.go sendWindowUpdate -> GrowTo). The library has no option for it, so
// this is the one place that adjusts it: YamuxStream.prototype.sendWindowUpdate is wrapped to
// skip updates that carry no flags and less than half a window; everything else (SYN/ACK
// updates, paused streams, window auto-tuning) still runs the library's code. The wire format
// is unchanged: fewer, larger updates, as go-yamux's own. tunnel-yamux.test.ts counts the
// frames on the wire and fails if the library changes under us.
import { StreamState, YamuxStream } from "@chainsafe/libp2p-yamux/stream";

/** The stream fields the threshold reads (public in the class, typed loosely here). */
interface WindowFields {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

const PATCHED = Symbol.for("edgemesh.yamuxHalfWindowUpdates");
/** The library's own method, kept on the prototype under this symbol (tests compare with it). */
export const YAMUX_ORIGINAL_SEND_WINDOW_UPDATE = Symbol.for("edgemesh.yamuxOriginalSendWindowUpdate");

/** Installs the half-window threshold once per process (idempotent); returns true if active. */
export function installYamuxHalfWindowUpdates(): boolean {
  const proto = YamuxStream.prototype as unknown as Record<PropertyKey, unknown> & { sendWindowUpdate: () => void };
  if (proto[PATCHED] === true) return true;
  const original = proto.sendWindowUpdate;
  if (typeof original !== "function" || !("Established" in StreamState)) {
    throw new Error("@chainsafe/libp2p-yamux changed (no YamuxStream.sendWindowUpdate): review src/tunnel/yamux-window.ts");
  }
  proto.sendWindowUpdate = function sendWindowUpdate(this: WindowFields) {
    // Only states in which the library would send no flags (getSendFlags has no side effect
    // there); Init/SYNReceived must send SYN/ACK and Paused only moves the epoch.
    const s = this.state;
    if (s === StreamState.Established || s === StreamState.SYNSent || s === StreamState.Finished) {
      if (this.recvWindow - this.recvWindowCapacity < this.recvWindow / 2) return;
    }
    original.call(this);
  };
  proto[YAMUX_ORIGINAL_SEND_WINDOW_UPDATE] = original;
  proto[PATCHED] = true;
  return true;
}
