// The tunnel's public surface: EdgeMesh-compatible identities, PSK and headers, and the libp2p
// transport that carries proxy streams between agents. Nothing else in src/tunnel is imported
// from outside.
export { TunnelError, type TunnelErrorCode } from "./errors.ts";
export { GoRand } from "./gorand.ts";
export { ed25519SeedFromNodeName, isPeerIdString, loadOrCreateKey, peerIdFromNodeName, privateKeyFromNodeName, seedFromNodeName } from "./identity.ts";
export { PSK_KEY_BYTES, pskKeyFromFile } from "./psk.ts";
export {
  decodeDiscovery,
  decodeDiscoveryBody,
  decodeProxy,
  decodeProxyBody,
  encodeDiscovery,
  encodeProxy,
  MAX_HEADER_BYTES,
  MsgType,
  splitDelimited,
  type DiscoveryMsg,
  type ProxyMsg,
} from "./codec.ts";
export { createTunnel } from "./tunnel.ts";
export { limitLogger } from "./limit-log.ts";
export { StreamBudget, STREAM_CLASSES, type ClassCounts, type LimitHit, type StreamClass } from "./limits.ts";
export { pnetProtector, XSalsaStream } from "./pnet.ts";
export * from "./constants.ts";
export type { TransportKind } from "./host.ts";
export type { NoiseAead } from "./noise.ts";
export type {
  CniHandler,
  CniHeader,
  IdentityOptions,
  LimitUse,
  OpenedCniStream,
  OpenedProxyStream,
  OpenProxyStreamOptions,
  PeerInfo,
  ProxyHandler,
  ProxyHeader,
  ProxyTarget,
  RelayNode,
  StreamLimits,
  Tunnel,
  TunnelOptions,
  TunnelStream,
} from "./types.ts";
export { FILTERED_INTERFACE_PREFIXES, listenAddrsFromInterfaces, type ListenAddrOptions } from "./listen.ts";
