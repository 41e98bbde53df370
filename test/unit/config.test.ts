import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { load as parseYaml } from "js-yaml";
import { ConfigError, defaultConfig, loadConfig, requireNodeName } from "../../src/control/config/index.ts";
import type { EdgeMeshAgentConfig } from "../../src/control/config/index.ts";

// kubeedge/edgemesh build/agent/resources/04-configmap.yaml, verbatim: the config EdgeMesh ships.
const EDGEMESH_SHIPPED_CONFIGMAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: edgemesh-agent-cfg
  namespace: kubeedge
  labels:
    k8s-app: kubeedge
    kubeedge: edgemesh-agent
data:
  edgemesh-agent.yaml: |
    # For more detailed configuration, please refer to: https://edgemesh.netlify.app/reference/config-items.html#edgemesh-agent-cfg
    modules:
      edgeProxy:
        enable: true
      edgeTunnel:
        enable: true
        #relayNodes:
        #- nodeName: <your relay node name1>
        #  advertiseAddress:
        #  - 1.1.1.1
        #- nodeName: <your relay node name2>
        #  advertiseAddress:
        #  - 2.2.2.2
        #  - 3.3.3.3
`;

// kubeedge/edgemesh docs/reference/config-items.md, "edgemesh-agent-cfg", verbatim (including
// its "TunnelPeerBaseStreamIn", which EdgeMesh's case-insensitive decoder accepts).
const EDGEMESH_DOCS_FULL = `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
kubeAPIConfig:
  master: https://119.8.211.54:6443
  contentType: application/vnd.kubernetes.protobuf
  qps: 100
  burst: 200
  kubeConfig: /root/.kube/config
  metaServer:
    server: http://127.0.0.1:10550
    security:
      requireAuthorization: false
      insecureSkipTLSVerify: false
      tlsCaFile: /etc/edgemesh/metaserver/rootCA.crt
      tlsCertFile: /etc/edgemesh/metaserver/server.crt
      tlsPrivateKeyFile: /etc/edgemesh/metaserver/server.key
  deleteKubeConfig: false
commonConfig:
  bridgeDeviceName: edgemesh0
  bridgeDeviceIP: 169.254.96.16
modules:
  edgeDNS:
    enable: false
    listenPort: 53
    cacheDNS:
      enable: false
      autoDetect: true
      upstreamServers:
      - 10.96.0.10
      - 1.1.1.1
      cacheTTL: 30
  edgeProxy:
    enable: false
    socks5Proxy:
      enable: false
      listenPort: 10800
    loadBalancer:
      consistentHash:
        partitionCount: 100
        replicationFactor: 10
        load: 1.25
    serviceFilterMode: FilterIfLabelExists
  edgeTunnel:
    enable: false
    listenPort: 20006
    transport: tcp
    rendezvous: EDGEMESH_PLAYGOUND
    relayNodes:
    - nodeName: k8s-master
      advertiseAddress:
      - 1.1.1.1
    - nodeName: ke-edge1
      advertiseAddress:
      - 2.2.2.2
      - 3.3.3.3
    enableIpfsLog: false
    maxCandidates: 5
    heartbeatPeriod: 120
    finderPeriod: 60
    psk:
      enable: true
      path: /etc/edgemesh/psk
    tunnelLimitConfig:
      enable: false
      tunnelBaseStreamIn: 10240
      tunnelBaseStreamOut: 10240
      TunnelPeerBaseStreamIn: 1024
      tunnelPeerBaseStreamOut: 1024
`;

/** Runs loadConfig expecting a ConfigError; returns it. */
function configError(text: string, path = "edgemesh-agent.yaml"): ConfigError {
  try {
    loadConfig({ text, path });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

/** A copy with the given changes, for "defaults except ..." comparisons. */
function withChanges(base: EdgeMeshAgentConfig, change: (c: EdgeMeshAgentConfig) => void): EdgeMeshAgentConfig {
  const copy = structuredClone(base) as EdgeMeshAgentConfig;
  change(copy);
  return copy;
}

describe("defaults", () => {
  test("equal EdgeMesh v1.17's on an edge node", () => {
    const c = defaultConfig({});
    expect(c.apiVersion).toBe("agent.edgemesh.config.kubeedge.io/v1alpha1");
    expect(c.kind).toBe("EdgeMeshAgent");
    expect(c.kubeAPIConfig).toMatchObject({
      master: "",
      contentType: "application/json",
      qps: 100,
      burst: 200,
      kubeConfig: "",
      mode: "EdgeMode",
      deleteKubeConfig: false,
      metaServer: {
        server: "http://127.0.0.1:10550",
        security: {
          requireAuthorization: false,
          insecureSkipTLSVerify: false,
          tlsCaFile: "/etc/edgemesh/metaserver/rootCA.crt",
          tlsCertFile: "/etc/edgemesh/metaserver/server.crt",
          tlsPrivateKeyFile: "/etc/edgemesh/metaserver/server.key",
        },
      },
    });
    expect(c.commonConfig).toMatchObject({ bridgeDeviceName: "edgemesh0", bridgeDeviceIP: "169.254.96.16" });
    expect(c.modules.edgeDNS).toMatchObject({
      enable: true,
      listenPort: 53,
      cacheDNS: { enable: false, autoDetect: true, upstreamServers: [], cacheTTL: 30 },
    });
    expect(c.modules.edgeProxy).toMatchObject({
      enable: false,
      socks5Proxy: { enable: false, listenPort: 10800 },
      loadBalancer: { consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 } },
      serviceFilterMode: "FilterIfLabelExists",
    });
    expect(c.modules.edgeTunnel).toMatchObject({
      enable: false,
      listenPort: 20006,
      transport: "tcp",
      rendezvous: "EDGEMESH_PLAYGOUND",
      relayNodes: [],
      enableIpfsLog: false,
      maxCandidates: 15,
      heartbeatPeriod: 120,
      finderPeriod: 60,
      psk: { enable: true, path: "/etc/edgemesh/psk" },
      tunnelLimitConfig: {
        enable: true,
        tunnelBaseStreamIn: 10240,
        tunnelBaseStreamOut: 10240,
        tunnelPeerBaseStreamIn: 1024,
        tunnelPeerBaseStreamOut: 1024,
      },
      listenInterfaces: "*",
      extraFilteredInterfaces: "",
    });
    expect(c.modules.edgeGateway).toEqual({
      enable: false,
      nic: "*",
      includeIP: "*",
      excludeIP: "*",
      loadBalancer: { consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 } },
    });
  });

  test("on a cloud node (KUBERNETES_PORT set) use protobuf and leave EdgeDNS off, as EdgeMesh does", () => {
    const c = defaultConfig({ KUBERNETES_PORT: "tcp://10.96.0.1:443" });
    expect(c.kubeAPIConfig.mode).toBe("CloudMode");
    expect(c.kubeAPIConfig.contentType).toBe("application/vnd.kubernetes.protobuf");
    expect(c.modules.edgeDNS.enable).toBe(false);
  });

  test("include our additions with their documented defaults", () => {
    const c = defaultConfig();
    expect(c.kubeAPIConfig.manifestDir).toBe("");
    expect(c.commonConfig.adminAddress).toBe("127.0.0.1:10551");
    expect(c.commonConfig.stateDir).toBe("/var/lib/edgemesh");
    expect(c.modules.edgeProxy).toMatchObject({ maxConnections: 0, maxConnectionsPerPort: 0, udpIdleTimeoutSeconds: 30 });
    expect(c.modules.edgeDNS).toMatchObject({ clusterDomain: "cluster.local", ttl: 30, upstreamResolvers: [], cacheSize: 10000 });
    expect(c.modules.edgeTunnel.identityMode).toBe("compat");
  });
});

describe("EdgeMesh's own files", () => {
  test("the shipped edgemesh-agent.yaml loads unchanged: defaults plus proxy and tunnel on", () => {
    const cm = parseYaml(EDGEMESH_SHIPPED_CONFIGMAP) as { data: Record<string, string> };
    const text = cm.data["edgemesh-agent.yaml"]!;
    const c = loadConfig({ text, path: "edgemesh-agent.yaml", env: {} });
    const expected = withChanges(defaultConfig({}), (d) => {
      d.modules.edgeProxy.enable = true;
      d.modules.edgeTunnel.enable = true;
    });
    expect(c).toEqual(expected);
  });

  test("the full example from EdgeMesh's docs loads with every value as written", () => {
    const notices: string[] = [];
    const c = loadConfig({ text: EDGEMESH_DOCS_FULL, env: {}, notice: (m) => notices.push(m) });
    expect(c.kubeAPIConfig.master).toBe("https://119.8.211.54:6443");
    expect(c.kubeAPIConfig.contentType).toBe("application/vnd.kubernetes.protobuf");
    expect(c.kubeAPIConfig.kubeConfig).toBe("/root/.kube/config");
    expect(c.modules.edgeDNS.enable).toBe(false);
    expect(c.modules.edgeDNS.cacheDNS.upstreamServers).toEqual(["10.96.0.10", "1.1.1.1"]);
    expect(c.modules.edgeTunnel.relayNodes).toEqual([
      { nodeName: "k8s-master", advertiseAddress: ["1.1.1.1"] },
      { nodeName: "ke-edge1", advertiseAddress: ["2.2.2.2", "3.3.3.3"] },
    ]);
    expect(c.modules.edgeTunnel.maxCandidates).toBe(5);
    expect(c.modules.edgeTunnel.tunnelLimitConfig.enable).toBe(false);
    expect(c.modules.edgeTunnel.tunnelLimitConfig.tunnelPeerBaseStreamIn).toBe(1024);
    expect(notices).toEqual([
      'modules.edgeTunnel.tunnelLimitConfig.TunnelPeerBaseStreamIn: read as "tunnelPeerBaseStreamIn" (keys match case-insensitively, as in EdgeMesh)',
    ]);
  });

  test("keys EdgeMesh sets itself at start are accepted and ignored, with a notice", () => {
    const notices: string[] = [];
    const text = "modules:\n  edgeTunnel:\n    mode: ClientOnly\n    nodeName: x\n  edgeDNS:\n    listenInterface: eth0\n";
    const c = loadConfig({ text, notice: (m) => notices.push(m) });
    expect(c.modules.edgeTunnel).not.toHaveProperty("mode");
    expect(notices).toHaveLength(3);
    expect(notices[0]).toStartWith("modules.edgeTunnel.mode: set by the agent at start");
  });

  test("an EdgeMeshGateway config is accepted; its apiVersion follows from its kind", () => {
    const c = loadConfig({ text: "kind: EdgeMeshGateway\nmodules:\n  edgeGateway:\n    enable: true\n    nic: lo,eth0\n" });
    expect(c.apiVersion).toBe("gateway.edgemesh.config.kubeedge.io/v1alpha1");
    expect(c.kind).toBe("EdgeMeshGateway");
    expect(c.modules.edgeGateway).toMatchObject({ enable: true, nic: "lo,eth0" });
  });
});

describe("our example file", () => {
  test("examples/edgemesh-agent.yaml holds only valid keys and default values (proxy and tunnel on)", () => {
    const path = new URL("../../examples/edgemesh-agent.yaml", import.meta.url).pathname;
    const c = loadConfig({ path, env: { NODE_NAME: "n1" } });
    const expected = withChanges(defaultConfig({ NODE_NAME: "n1" }), (d) => {
      d.modules.edgeProxy.enable = true;
      d.modules.edgeTunnel.enable = true;
    });
    expect(c).toEqual(expected);
    expect(readFileSync(path, "utf8")).toContain("udpIdleTimeoutSeconds");
  });
});

describe("refused values name the key path and the value", () => {
  test("an unknown key, with a suggestion for a near miss", () => {
    const err = configError("modules:\n  edgeDNS:\n    lisenPort: 53\n");
    expect(err.problems).toEqual([{ path: "modules.edgeDNS.lisenPort", message: 'unknown key (did you mean "listenPort"?)' }]);
    expect(err.message).toBe('config edgemesh-agent.yaml: modules.edgeDNS.lisenPort: unknown key (did you mean "listenPort"?)');
  });

  test("nodeName in the file is unknown: it comes only from the environment", () => {
    expect(configError("nodeName: n1\n").problems[0]!.path).toBe("nodeName");
  });

  test("a wrong type", () => {
    const err = configError('kubeAPIConfig:\n  qps: fast\nmodules:\n  edgeDNS:\n    enable: "maybe"\n  edgeProxy: [1]\n');
    expect(err.problems).toEqual([
      { path: "kubeAPIConfig.qps", message: 'expected an integer >= 0, got "fast"' },
      { path: "modules.edgeDNS.enable", message: 'expected true or false, got "maybe"' },
      { path: "modules.edgeProxy", message: "expected a mapping, got a list [1]" },
    ]);
  });

  test("the consistent-hash load must be a number above 1", () => {
    const err = configError("modules:\n  edgeProxy:\n    loadBalancer:\n      consistentHash:\n        load: abc\n");
    expect(err.message).toContain('modules.edgeProxy.loadBalancer.consistentHash.load: expected a number > 1, got "abc"');
    expect(configError("modules:\n  edgeProxy:\n    loadBalancer:\n      consistentHash:\n        load: 1\n").message).toContain(
      "consistentHash.load: expected a number > 1, got 1",
    );
  });

  test("ports out of range; 0 only where it means pick a free port", () => {
    expect(configError("modules:\n  edgeTunnel:\n    listenPort: 70000\n").problems).toEqual([
      { path: "modules.edgeTunnel.listenPort", message: "expected a port number 1..65535, got 70000" },
    ]);
    expect(configError("modules:\n  edgeDNS:\n    listenPort: 0\n").problems[0]!.message).toBe(
      "expected a port number 1..65535, got 0",
    );
    expect(configError("commonConfig:\n  adminAddress: 127.0.0.1:65536\n").problems[0]).toEqual({
      path: "commonConfig.adminAddress",
      message: 'expected HOST:PORT with a port in 0..65535, got "127.0.0.1:65536"',
    });
    expect(loadConfig({ text: "commonConfig:\n  adminAddress: 127.0.0.1:0\n" }).commonConfig.adminAddress).toBe("127.0.0.1:0");
  });

  test("a bad enum value lists the allowed ones", () => {
    expect(configError("modules:\n  edgeTunnel:\n    transport: udp\n").problems[0]).toEqual({
      path: "modules.edgeTunnel.transport",
      message: 'expected one of "tcp", "ws", "quic", got "udp"',
    });
    expect(configError("modules:\n  edgeTunnel:\n    identityMode: strict\n").problems[0]!.message).toBe(
      'expected one of "compat", "secure", got "strict"',
    );
  });

  test("IPs that do not parse, also inside lists", () => {
    const err = configError(
      "commonConfig:\n  bridgeDeviceIP: 169.254.96.300\nmodules:\n  edgeTunnel:\n    relayNodes:\n    - nodeName: r1\n      advertiseAddress: [1.1.1.1, relay.example.com]\n  edgeDNS:\n    upstreamResolvers: [8.8.8.8, '[2001:db8::1]:5353', 'dns:53']\n",
    );
    expect(err.problems).toEqual([
      { path: "commonConfig.bridgeDeviceIP", message: 'expected an IP address, got "169.254.96.300"' },
      { path: "modules.edgeTunnel.relayNodes[0].advertiseAddress[1]", message: 'expected an IP address, got "relay.example.com"' },
      { path: "modules.edgeDNS.upstreamResolvers[2]", message: 'expected an IP address or IP:PORT, got "dns:53"' },
    ]);
  });

  test("a wrong apiVersion or kind, a mismatched pair, and a ConfigMap given by mistake", () => {
    expect(configError("apiVersion: v1\n").problems[0]).toEqual({
      path: "apiVersion",
      message:
        'expected one of "agent.edgemesh.config.kubeedge.io/v1alpha1", "gateway.edgemesh.config.kubeedge.io/v1alpha1", got "v1"',
    });
    expect(configError("kind: EdgeMeshServer\n").problems[0]!.path).toBe("kind");
    expect(configError("apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshGateway\n").problems[0]).toEqual({
      path: "kind",
      message: 'expected "EdgeMeshAgent" with apiVersion "agent.edgemesh.config.kubeedge.io/v1alpha1", got "EdgeMeshGateway"',
    });
    expect(configError(EDGEMESH_SHIPPED_CONFIGMAP).message).toContain('data["edgemesh-agent.yaml"]');
  });

  test("cross-key rules: a PSK path when PSK is on, relay nodes named once", () => {
    const err = configError(
      'modules:\n  edgeTunnel:\n    psk: {enable: true, path: ""}\n    relayNodes:\n    - advertiseAddress: [1.1.1.1]\n    - nodeName: r\n    - nodeName: r\n',
    );
    expect(err.problems).toEqual([
      { path: "modules.edgeTunnel.psk.path", message: 'required when psk.enable is true, got ""' },
      { path: "modules.edgeTunnel.relayNodes[0].nodeName", message: "required, got nothing" },
      { path: "modules.edgeTunnel.relayNodes[2].nodeName", message: 'node "r" is already listed at relayNodes[1]' },
    ]);
  });

  test("every problem is reported at once, one line each", () => {
    const err = configError(
      "kubeAPIConfig:\n  burst: -1\ncommonConfig:\n  bridgeDeviceName: this-name-is-too-long\nmodules:\n  edgeDNS:\n    clusterDomain: 'bad domain'\n  edgeGateway:\n    includeIP: 10.0.0.1,nope\n  edgeProxy:\n    udpIdleTimeoutSeconds: 0\n",
    );
    expect(err.problems.map((p) => p.path)).toEqual([
      "kubeAPIConfig.burst",
      "commonConfig.bridgeDeviceName",
      "modules.edgeDNS.clusterDomain",
      "modules.edgeGateway.includeIP",
      "modules.edgeProxy.udpIdleTimeoutSeconds",
    ]); // in file order
    expect(err.message.split("\n")).toHaveLength(6);
    expect(err.message).toStartWith("config edgemesh-agent.yaml: 5 problems:\n  - kubeAPIConfig.burst: expected an integer >= 0, got -1");
  });

  test("a YAML syntax error names the file, line and column", () => {
    const err = configError("modules:\n  edgeDNS:\n    enable: true\n   listenPort: 53\n", "/etc/edgemesh/config/edgemesh-agent.yaml");
    expect(err.file).toBe("/etc/edgemesh/config/edgemesh-agent.yaml");
    expect(err.message).toStartWith("config /etc/edgemesh/config/edgemesh-agent.yaml: line 4, column 4: YAML syntax error: ");
  });

  test("an unreadable file is named", () => {
    const missing = "/nonexistent/edgemesh-agent.yaml";
    expect(() => loadConfig({ path: missing })).toThrow(`config ${missing}: cannot read the file`);
  });
});

describe("loading", () => {
  test("JSON works too, and an empty file means all defaults", () => {
    const c = loadConfig({ text: '{"modules": {"edgeProxy": {"enable": true, "maxConnections": 5000}}}' });
    expect(c.modules.edgeProxy).toMatchObject({ enable: true, maxConnections: 5000 });
    expect(loadConfig({ text: "# nothing\n" })).toEqual(defaultConfig());
    expect(loadConfig({})).toEqual(defaultConfig());
  });

  test("an empty value keeps the default, lists replace, yes/no are booleans (as in EdgeMesh's decoder)", () => {
    const c = loadConfig({
      text: "kubeAPIConfig:\n  qps:\nmodules:\n  edgeProxy:\n    enable: yes\n  edgeDNS:\n    enable: off\n    upstreamResolvers: [9.9.9.9]\n",
    });
    expect(c.kubeAPIConfig.qps).toBe(100);
    expect(c.modules.edgeProxy.enable).toBe(true);
    expect(c.modules.edgeDNS.enable).toBe(false);
    expect(c.modules.edgeDNS.upstreamResolvers).toEqual(["9.9.9.9"]);
  });

  test("the path is read through the injected reader", () => {
    const read: string[] = [];
    const c = loadConfig({ path: "/cfg.yaml", readFile: (p) => (read.push(p), "modules:\n  edgeDNS:\n    ttl: 5\n") });
    expect(read).toEqual(["/cfg.yaml"]);
    expect(c.modules.edgeDNS.ttl).toBe(5);
  });

  test("NODE_NAME and NAMESPACE come from the environment into config.nodeName / config.namespace", () => {
    const c = loadConfig({ text: "", env: { NODE_NAME: "edge-1", NAMESPACE: "kubeedge" } });
    expect(c.nodeName).toBe("edge-1");
    expect(c.namespace).toBe("kubeedge");
    expect(requireNodeName(c)).toBe("edge-1");
  });

  test("requireNodeName refuses a config without NODE_NAME", () => {
    const c = loadConfig({ text: "", env: {} });
    expect(c.nodeName).toBe("");
    expect(() => requireNodeName(c)).toThrow(ConfigError);
    expect(() => requireNodeName(c)).toThrow("NODE_NAME: required in agent mode");
  });

  test("the result is deeply frozen", () => {
    const c = loadConfig({ text: "modules:\n  edgeTunnel:\n    relayNodes: [{nodeName: r, advertiseAddress: [1.1.1.1]}]\n" });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.modules.edgeProxy.loadBalancer.consistentHash)).toBe(true);
    expect(Object.isFrozen(c.modules.edgeTunnel.relayNodes[0]!.advertiseAddress)).toBe(true);
    expect(() => {
      (c.modules.edgeDNS as { listenPort: number }).listenPort = 5353;
    }).toThrow(TypeError);
    expect(c.modules.edgeDNS.listenPort).toBe(53);
    // defaultConfig() hands out a fresh tree each time, so nobody shares mutable state.
    expect(defaultConfig()).not.toBe(defaultConfig());
    expect(Object.isFrozen(defaultConfig().modules)).toBe(true);
  });
});
