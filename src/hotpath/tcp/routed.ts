// A client whose service port was chosen by someone else (the edge gateway's TCP and TLS
// passthrough routes): load balancing, failover with backoff, the tunnel for endpoints on other
// nodes, early bytes replayed (a ClientHello read for its SNI), and the splice: everything a
// service listener's connection gets, without the listener.

import type { ServicePort } from "../../control/index.ts";
import type { ByteStream, StreamSink } from "../types.ts";
import type { TcpContext } from "./conn.ts";
import { admitStream, startDialing } from "./dial.ts";

export function acceptRouted(
  ctx: TcpContext,
  sp: ServicePort,
  clientIp: string,
  stream: ByteStream,
  early: readonly Uint8Array[],
): StreamSink | null {
  const c = admitStream(ctx, stream);
  if (c === null) return null;
  c.clientIp = clientIp;
  c.sp = sp;
  for (let i = 0; i < early.length; i++) {
    c.early.push(early[i]!);
    c.earlyBytes += early[i]!.length;
  }
  return startDialing(ctx, c, stream);
}
