// The tunnel side of the data plane: a RemoteDialer over proxy streams, the handler for streams
// other agents open to this node, and the adapters between libp2p streams and the splice.
export { createTunnelDialer, type ProxyStreamOpener, type TunnelDialer, type TunnelDialerOptions } from "./dialer.ts";
export { createInboundHandler, type InboundHandler, type InboundOptions } from "./inbound.ts";
export { StreamAdapter } from "./stream.ts";
export { StreamDatagrams, MAX_FRAMED_DATAGRAM_BYTES, UDP_STREAM_QUEUE_MAX_BYTES } from "./datagrams.ts";
export { LocalTargets } from "./targets.ts";
