// Public surface of the data plane: the proxy (TCP splice + UDP flows per service port), its
// option/result types, the tunnel seam (RemoteDialer / ByteStream / StreamSink) and the pure
// load-balancing functions (for benchmarks and tests), and the SOCKS5 listener.
export { createProxy } from "./proxy.ts";
export type { ByteStream, DatagramChannel, DatagramSink, ListenerInfo, Proxy, ProxyOptions, ProxyStats, RemoteDialer, StreamSink } from "./types.ts";
export * from "./remote/index.ts";
export { UDP_IDLE_TIMEOUT_DEFAULT_MS, UDP_FLOWS_MAX_DEFAULT, DIAL_TIMEOUT_MS, BACKOFF_MS } from "./constants.ts";
export * from "./lb/index.ts";
export { createSocks5Server, createHostAddresses, nodeDirectory, EMPTY_DIRECTORY, type NodeDirectory, type Socks5Server } from "./socks5/index.ts";
export { createZeroCopyIfSupported, zeroCopyFdBudget, type ZeroCopyEngine } from "./zerocopy/index.ts";
export * from "./cni/index.ts";
