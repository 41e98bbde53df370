// A client whose service port was chosen by someone else (the edge gateway's TCP and TLS
// passthrough routes): load balancing, failover with backoff, the tunnel for endpoints on other
// nodes, early bytes replayed (a ClientHello read for its SNI), and the splice: everything a
// service listener's connection gets, without the listener.

import type { ServicePort } from "../../control/index.ts";
import type { ByteStream, StreamSink } from "../types.ts";
import { acquireConn, PHASE_DIALING, type TcpContext } from "./conn.ts";
import { nextDial } from "./dial.ts";
import { Inbound } from "./splice.ts";

export function acceptRouted(
  ctx: TcpContext,
  sp: ServicePort,
  clientIp: string,
  stream: ByteStream,
  early: readonly Uint8Array[],
): StreamSink | null {
  ctx.m.accepted.value++;
  if (!ctx.accepting || ctx.active >= ctx.maxConnections) {
    ctx.m.refusedLimit.value++;
    return null;
  }
  const c = acquireConn(ctx);
  c.client = stream;
  c.clientIp = clientIp;
  c.sp = sp;
  c.phase = PHASE_DIALING;
  for (let i = 0; i < early.length; i++) {
    c.early.push(early[i]!);
    c.earlyBytes += early[i]!.length;
  }
  ctx.active++;
  ctx.live.add(c);
  stream.pause();
  const sink = new Inbound(c);
  nextDial(c);
  return sink;
}
