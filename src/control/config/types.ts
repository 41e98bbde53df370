// The agent's configuration, shaped like EdgeMesh v1.17's `EdgeMeshAgentConfig`
// (pkg/apis/config/v1alpha1/types.go) so an existing edgemesh-agent.yaml loads unchanged.
// Key names are EdgeMesh's JSON names. Fields marked "edgemesh-bun" are our additions.
// Defaults live in defaults.ts; every field below is always present after loading.

export const AGENT_API_VERSION = "agent.edgemesh.config.kubeedge.io/v1alpha1";
export const AGENT_KIND = "EdgeMeshAgent";
/** EdgeMesh's gateway config (edgemesh-gateway.yaml) uses the same shape under these names. */
export const GATEWAY_API_VERSION = "gateway.edgemesh.config.kubeedge.io/v1alpha1";
export const GATEWAY_KIND = "EdgeMeshGateway";

export type ApiVersion = typeof AGENT_API_VERSION | typeof GATEWAY_API_VERSION;
export type ConfigKind = typeof AGENT_KIND | typeof GATEWAY_KIND;
/** EdgeMesh's running mode: CloudMode when KUBERNETES_PORT is in the environment, else EdgeMode. */
export type RunningMode = "EdgeMode" | "CloudMode" | "ManualMode";
export type TunnelTransport = "tcp" | "ws" | "quic";
/**
 * edgemesh-bun: how the tunnel's libp2p identity is made.
 * - "compat": EdgeMesh's key derived from the node name, so mixed clusters interoperate
 *   (anyone who knows a node's name knows its key; the PSK is the only secret).
 * - "secure": a random key kept in commonConfig.stateDir; not wire-compatible with EdgeMesh peers.
 */
export type IdentityMode = "compat" | "secure";
export type WireFormat = "extended" | "edgemesh";

export interface EdgeMeshAgentConfig {
  apiVersion: ApiVersion;
  kind: ConfigKind;
  /** edgemesh-bun: NODE_NAME from the environment ("" when unset). Never read from the file. */
  nodeName: string;
  /** edgemesh-bun: NAMESPACE from the environment ("" when unset). Never read from the file. */
  namespace: string;
  kubeAPIConfig: KubeAPIConfig;
  commonConfig: CommonConfig;
  modules: AgentModules;
}

export interface KubeAPIConfig {
  /** API server address, overrides the kubeconfig's. */
  master: string;
  /** "application/json" on the edge (MetaServer speaks only JSON), protobuf in the cloud. */
  contentType: string;
  qps: number;
  burst: number;
  /** Path to a kubeconfig file; "" means in-cluster or metaServer. */
  kubeConfig: string;
  /** Detected from the environment like EdgeMesh does; a file value is honoured as in EdgeMesh. */
  mode: RunningMode;
  metaServer: MetaServer;
  deleteKubeConfig: boolean;
  /**
   * edgemesh-bun: a folder of Kubernetes manifests (Service, EndpointSlice, Endpoints,
   * DestinationRule...) used as the metadata source instead of the API. "" = use the API.
   */
  manifestDir: string;
}

export interface MetaServer {
  /** KubeEdge MetaServer URL, http://127.0.0.1:10550 by default. */
  server: string;
  security: MetaServerSecurity;
}

export interface MetaServerSecurity {
  requireAuthorization: boolean;
  insecureSkipTLSVerify: boolean;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
}

export interface CommonConfig {
  /** Device carrying bridgeDeviceIP; the DNS server and proxy listeners bind there. */
  bridgeDeviceName: string;
  bridgeDeviceIP: string;
  /** EdgeMesh >= 1.15 pprof switch; accepted for compatibility, not used by edgemesh-bun. */
  pprofConfig: PprofConfig;
  /** edgemesh-bun: admin HTTP endpoint (HOST:PORT; port 0 picks a free one). */
  adminAddress: string;
  /**
   * edgemesh-bun: where the agent keeps state across restarts: the last metadata snapshot
   * (so an agent cut off from the cloud can start with the services it last saw) and, in
   * identityMode "secure", the tunnel key.
   */
  stateDir: string;
  /** edgemesh-bun: least severe log level written (debug, info, warn, error); --log-level overrides. */
  logLevel: "debug" | "info" | "warn" | "error";
  /** edgemesh-bun: "text" (one key=value line per event) or "json" (one object per line); --log-format overrides. */
  logFormat: "text" | "json";
}

export interface PprofConfig {
  enableProfiling: boolean;
  profilingAddress: string;
  profilingPort: number;
}

export interface AgentModules {
  edgeDNS: EdgeDNSConfig;
  edgeProxy: EdgeProxyConfig;
  edgeTunnel: EdgeTunnelConfig;
  /** In EdgeMesh only the gateway config has this module; here one file can hold all. */
  edgeGateway: EdgeGatewayConfig;
  /** EdgeMesh's (beta) Edge CNI: pod-to-pod traffic by pod IP across sites, over the tunnel. */
  edgeCNI: EdgeCNIConfig;
}

export interface EdgeDNSConfig {
  /** Default true in EdgeMode, false in CloudMode (cluster DNS already works there). */
  enable: boolean;
  listenPort: number;
  cacheDNS: CacheDNS;
  /** edgemesh-bun: the cluster's DNS domain, answered locally. */
  clusterDomain: string;
  /** edgemesh-bun: TTL in seconds of answers for cluster names. */
  ttl: number;
  /**
   * edgemesh-bun: resolvers for non-cluster names, "IP" or "IP:PORT".
   * Empty = the nameservers of the node's /etc/resolv.conf.
   */
  upstreamResolvers: readonly string[];
  /** edgemesh-bun: entries in the cache of forwarded answers (0 disables it). */
  cacheSize: number;
}

export interface CacheDNS {
  enable: boolean;
  /** Find the cluster DNS (kube-dns) address by itself. */
  autoDetect: boolean;
  /** Cluster DNS addresses used when autoDetect is off. */
  upstreamServers: readonly string[];
  /** Seconds. */
  cacheTTL: number;
}

export interface EdgeProxyConfig {
  enable: boolean;
  socks5Proxy: Socks5Proxy;
  loadBalancer: LoadBalancerConfig;
  /**
   * Which services the label service.edgemesh.kubeedge.io/service-proxy-name excludes.
   * (Spelled out rather than named: compile/ exports the ServiceFilterMode name.)
   */
  serviceFilterMode: "FilterIfLabelExists" | "FilterIfLabelDoesNotExists";
  /**
   * edgemesh-bun: cap on concurrent proxied connections for the whole agent.
   * 0 = automatic, derived from RLIMIT_NOFILE with headroom, so the agent refuses new
   * connections instead of failing with "too many open files".
   */
  maxConnections: number;
  /** edgemesh-bun: cap per service port; 0 = no per-port cap beyond maxConnections. */
  maxConnectionsPerPort: number;
  /**
   * edgemesh-bun: seconds a UDP flow lives without traffic. EdgeMesh uses 250 ms, which
   * drops replies that take longer than that (a DNS resolver behind a slow link, any
   * request/response protocol with think time) and rebuilds the flow for each request;
   * 30 s matches the conntrack UDP timeout most kernels use.
   */
  udpIdleTimeoutSeconds: number;
}

export interface Socks5Proxy {
  /** EdgeMesh's SOCKS5 proxy on the bridge IP: CONNECT to a node name (or a node's IP) reaches a
   * port on that node through the tunnel (SSH to edge nodes in other LANs). */
  enable: boolean;
  listenPort: number;
}

export interface LoadBalancerConfig {
  consistentHash: ConsistentHash;
}

/** Consistent hashing with bounded loads (Mirrokni et al.); EdgeMesh's parameters. */
export interface ConsistentHash {
  partitionCount: number;
  replicationFactor: number;
  /** Bound on a member's load relative to the average; must be > 1. */
  load: number;
}

export interface EdgeTunnelConfig {
  enable: boolean;
  listenPort: number;
  transport: TunnelTransport;
  /** Group name in discovery; peers with a different one do not find each other. */
  rendezvous: string;
  /** Nodes that act as circuit relays, with addresses reachable from every site. */
  relayNodes: readonly RelayNode[];
  enableIpfsLog: boolean;
  /** Relay candidates kept buffered. */
  maxCandidates: number;
  /** Seconds between keep-alives to relay peers. */
  heartbeatPeriod: number;
  /** Seconds between relay-finder runs. */
  finderPeriod: number;
  psk: PskConfig;
  tunnelLimitConfig: TunnelLimitConfig;
  /** "*" or "" = all interfaces, or a comma list such as "lo,eth0". */
  listenInterfaces: string;
  /** Comma list of interfaces never listened on, besides EdgeMesh's built-in prefixes. */
  extraFilteredInterfaces: string;
  /** EdgeMesh's Prometheus switch for the tunnel; accepted for compatibility. */
  metricConfig: MetricConfig;
  identityMode: IdentityMode;
  /**
   * "extended" (default): between our agents, early data and multiplexed UDP flows (header
   * extensions EdgeMesh ignores). "edgemesh": speak only EdgeMesh's own formats, as opener and
   * receiver (a stream per UDP flow, raw datagrams).
   */
  wireFormat: WireFormat;
}

export interface RelayNode {
  nodeName: string;
  advertiseAddress: readonly string[];
}

export interface PskConfig {
  /** Private network: only peers holding the same PSK file can connect. */
  enable: boolean;
  path: string;
}

export interface TunnelLimitConfig {
  enable: boolean;
  tunnelBaseStreamIn: number;
  tunnelBaseStreamOut: number;
  tunnelPeerBaseStreamIn: number;
  tunnelPeerBaseStreamOut: number;
}

/** EdgeMesh's edgeTunnel.metricConfig: a Prometheus listener on port (all addresses in EdgeMesh). */
export interface MetricConfig {
  enable: boolean;
  port: number;
  /** edgemesh-bun: the IP the metrics listener binds (0.0.0.0 as EdgeMesh; "::" for IPv6 too). */
  bindAddress: string;
}

export interface EdgeGatewayConfig {
  enable: boolean;
  /** "*" or "" = all NICs, or a comma list such as "lo,eth0". */
  nic: string;
  /** "*" or "" = all IPs of the chosen NICs, or a comma list of IPs. */
  includeIP: string;
  /** "*" or "" = exclude nothing, or a comma list of IPs. */
  excludeIP: string;
  loadBalancer: LoadBalancerConfig;
}

export interface EdgeCNIConfig {
  /** Route remote pod CIDRs that are not reachable at layer 3 into a TUN device and carry the
   * packets over the tunnel (needs edgeTunnel). Default false, as in EdgeMesh. */
  enable: boolean;
  /**
   * EdgeMesh's beta: the node's encapsulation address (its code reads it as an IP in one
   * version and as an interface name in another). Accepted; there is no outer encapsulation
   * here (packets ride the libp2p tunnel), so a value only draws a notice.
   */
  encapIP: string;
  /** EdgeMesh's beta: TUN mode switch (an int, never read by its code). Accepted; 0 = TUN. */
  tunMode: number;
  meshCIDRConfig: MeshCIDRConfig;
}

/**
 * EdgeMesh's pod network segments. Each entry is a pod address range whose pods reach each
 * other at layer 2/3 (a site, the cloud). A remote node's pod CIDR in another segment than this
 * node's goes through the tunnel.
 */
export interface MeshCIDRConfig {
  cloudCIDR: readonly string[];
  edgeCIDR: readonly string[];
}
