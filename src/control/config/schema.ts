// The config file's schema as data: every key EdgeMesh v1.17 accepts plus ours, its type and
// its allowed values. The walker (walk.ts) uses it to merge a file onto the defaults and to
// report unknown keys and bad values with their full path.

import * as c from "./checks.ts";
import type { Check } from "./checks.ts";
import { AGENT_API_VERSION, AGENT_KIND, GATEWAY_API_VERSION, GATEWAY_KIND } from "./types.ts";

export type SchemaNode =
  | {
      kind: "object";
      fields: Readonly<Record<string, SchemaNode>>;
      /**
       * Keys EdgeMesh's decoder accepts but overwrites at start ("do not allow users to
       * configure manually"); `--defaultconfig` dumps include them. Accepted and ignored.
       */
      internal?: readonly string[];
    }
  | { kind: "string"; check?: Check<string> }
  | { kind: "bool" }
  | { kind: "int"; min: number; max: number; what?: string }
  | { kind: "number"; check: Check<number> }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "list"; item: SchemaNode; newItem?: () => unknown };

const obj = (fields: Record<string, SchemaNode>, internal?: readonly string[]): SchemaNode => ({
  kind: "object",
  fields,
  internal,
});
const str = (check?: Check<string>): SchemaNode => ({ kind: "string", check });
const bool: SchemaNode = { kind: "bool" };
const int = (min: number, max = 2 ** 31 - 1): SchemaNode => ({ kind: "int", min, max });
const enumOf = (...values: string[]): SchemaNode => ({ kind: "enum", values });
const list = (item: SchemaNode, newItem?: () => unknown): SchemaNode => ({ kind: "list", item, newItem });
/** A listening port; EdgeMesh does not validate these, but 0 or > 65535 can only fail later. */
const port: SchemaNode = { kind: "int", min: 1, max: 65535, what: "a port number" };
/** Optional ports whose zero value means "unset" (Go zero value) or "pick a free one". */
const port0: SchemaNode = { kind: "int", min: 0, max: 65535, what: "a port number" };

const loadBalancer = obj(
  {
    consistentHash: obj({
      partitionCount: int(1),
      replicationFactor: int(1),
      load: { kind: "number", check: (n) => (n > 1 ? undefined : "expected a number > 1") },
    }),
  },
  ["caller", "nodeName"],
);

const kubeAPIConfig = obj({
  master: str(),
  contentType: enumOf("application/json", "application/vnd.kubernetes.protobuf", ""),
  qps: int(0),
  burst: int(0),
  kubeConfig: str(),
  mode: enumOf("EdgeMode", "CloudMode", "ManualMode"),
  metaServer: obj({
    server: str(c.httpUrl),
    security: obj({
      requireAuthorization: bool,
      insecureSkipTLSVerify: bool,
      tlsCaFile: str(),
      tlsCertFile: str(),
      tlsPrivateKeyFile: str(),
    }),
  }),
  deleteKubeConfig: bool,
  manifestDir: str(),
});

const commonConfig = obj({
  bridgeDeviceName: str(c.ifName),
  bridgeDeviceIP: str(c.ip),
  pprofConfig: obj({ enableProfiling: bool, profilingAddress: str(c.ipOrEmpty), profilingPort: port0 }),
  adminAddress: str(c.listenAddress),
  stateDir: str(c.nonEmpty),
  logLevel: enumOf("debug", "info", "warn", "error"),
  logFormat: enumOf("text", "json"),
});

const edgeDNS = obj(
  {
    enable: bool,
    listenPort: port,
    cacheDNS: obj({
      enable: bool,
      autoDetect: bool,
      upstreamServers: list(str(c.ipMaybePort)),
      cacheTTL: int(0),
    }),
    clusterDomain: str(c.dnsDomain),
    ttl: int(0),
    upstreamResolvers: list(str(c.ipMaybePort)),
    cacheSize: int(0),
  },
  ["kubeAPIConfig", "listenInterface"],
);

const edgeProxy = obj(
  {
    enable: bool,
    socks5Proxy: obj({ enable: bool, listenPort: port }, ["nodeName", "namespace"]),
    loadBalancer,
    serviceFilterMode: enumOf("FilterIfLabelExists", "FilterIfLabelDoesNotExists"),
    maxConnections: int(0),
    maxConnectionsPerPort: int(0),
    udpIdleTimeoutSeconds: { kind: "number", check: (n) => (n > 0 ? undefined : "expected a number of seconds > 0") },
  },
  ["listenInterface"],
);

const relayNode = obj({ nodeName: str(c.nonEmpty), advertiseAddress: list(str(c.ip)) });

const edgeTunnel = obj(
  {
    enable: bool,
    listenPort: port,
    transport: enumOf("tcp", "ws", "quic"),
    rendezvous: str(c.nonEmpty),
    relayNodes: list(relayNode, () => ({ nodeName: "", advertiseAddress: [] })),
    enableIpfsLog: bool,
    maxCandidates: int(0),
    heartbeatPeriod: int(1),
    finderPeriod: int(1),
    psk: obj({ enable: bool, path: str() }),
    tunnelLimitConfig: obj({
      enable: bool,
      tunnelBaseStreamIn: int(0),
      tunnelBaseStreamOut: int(0),
      tunnelPeerBaseStreamIn: int(0),
      tunnelPeerBaseStreamOut: int(0),
    }),
    listenInterfaces: str(c.ifList),
    extraFilteredInterfaces: str(c.ifList),
    metricConfig: obj({ enable: bool, port: port0, bindAddress: str(c.ip) }),
    identityMode: enumOf("compat", "secure"),
    wireFormat: enumOf("extended", "edgemesh"),
  },
  ["mode", "nodeName", "configPath"],
);

const edgeGateway = obj({
  enable: bool,
  nic: str(c.ifList),
  includeIP: str(c.ipList),
  excludeIP: str(c.ipList),
  loadBalancer,
});

const edgeCNI = obj({
  enable: bool,
  encapIP: str(c.ipOrIfNameOrEmpty),
  tunMode: int(0),
  meshCIDRConfig: obj({ cloudCIDR: list(str(c.cidr)), edgeCIDR: list(str(c.cidr)) }),
});

/** The whole file. nodeName/namespace are not here: they come only from the environment. */
export const CONFIG_SCHEMA: SchemaNode = obj(
  {
    apiVersion: enumOf(AGENT_API_VERSION, GATEWAY_API_VERSION),
    kind: enumOf(AGENT_KIND, GATEWAY_KIND),
    kubeAPIConfig,
    commonConfig,
    modules: obj({ edgeDNS, edgeProxy, edgeTunnel, edgeGateway, edgeCNI }),
  },
  // EdgeMesh >= 1.15 gateway configs carry pprofConfig at the top level.
  ["pprofConfig"],
);
