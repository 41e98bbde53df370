// The agent's tunnel options from an EdgeMesh config (src/main/tunnel.ts), and relayNodes edits
// in the config file reaching a running tunnel without a restart.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { NetworkInterfaceInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/control/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { TUNNEL_KEY_FILE, TunnelConfigError, tunnelOptions, watchRelayNodes } from "../../src/main/tunnel.ts";
import { pskKeyFromFile, type RelayNode } from "../../src/tunnel/index.ts";

const dir = mkdtempSync(join(tmpdir(), "tunnel-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const nic = (address: string): NetworkInterfaceInfo => ({ address, family: "IPv4", netmask: "255.255.255.0", mac: "00:00:00:00:00:00", internal: false, cidr: `${address}/24` });
const interfaces = () => ({ lo: [nic("127.0.0.1")], eth0: [nic("10.10.0.11")], cni0: [nic("10.244.1.1")], edgemesh0: [nic("169.254.96.16")] });

function config(tunnel: string) {
  const text = `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
commonConfig:
  stateDir: ${dir}/state
modules:
  edgeTunnel:
    enable: true
${tunnel}`;
  return loadConfig({ text, env: { NODE_NAME: "n1" } });
}

test("PSK file, listen addresses (no loopback, no CNI or edgemesh devices), limits and relays map to tunnel options", () => {
  const psk = join(dir, "psk");
  writeFileSync(psk, "a shared secret\n");
  const o = tunnelOptions(
    config(`    psk: { enable: true, path: ${psk} }
    listenPort: 20006
    tunnelLimitConfig: { enable: true, tunnelBaseStreamIn: 100, tunnelBaseStreamOut: 50, tunnelPeerBaseStreamIn: 10, tunnelPeerBaseStreamOut: 20 }
    relayNodes:
      - nodeName: relay
        advertiseAddress: ["10.0.0.5"]
`),
    createMemoryLogger(),
    createMetrics(),
    { interfaces: interfaces as never },
  );
  expect(o.nodeName).toBe("n1");
  expect(o.psk).toEqual(pskKeyFromFile(new TextEncoder().encode("a shared secret\n")));
  expect(o.listenAddrs).toEqual(["/ip4/10.10.0.11/tcp/20006"]);
  expect(o.maxStreams).toBe(100);
  expect(o.maxStreamsPerPeer).toBe(20);
  expect(o.relayNodes).toEqual([{ nodeName: "relay", advertiseAddress: ["10.0.0.5"] }]);
  expect(o.identity).toEqual({ mode: "compat" });
  expect(o.mdns).toBe(true);
});

test("secure identity keeps its key in stateDir; a missing PSK file and PSK over QUIC are refused naming the key", () => {
  const secure = tunnelOptions(config(`    psk: { enable: false }\n    identityMode: secure\n`), createMemoryLogger(), createMetrics(), { interfaces: interfaces as never });
  expect(secure.identity).toEqual({ mode: "secure", keyFile: join(dir, "state", TUNNEL_KEY_FILE) });
  expect(secure.psk).toBeUndefined();
  expect(() => tunnelOptions(config(`    psk: { enable: true, path: ${dir}/nope }\n`), createMemoryLogger(), createMetrics())).toThrow(TunnelConfigError);
  expect(() => tunnelOptions(config(`    psk: { enable: true, path: ${dir}/nope }\n`), createMemoryLogger(), createMetrics())).toThrow(/modules\.edgeTunnel\.psk\.path/);
  writeFileSync(join(dir, "psk2"), "x");
  expect(() => tunnelOptions(config(`    transport: quic\n    psk: { enable: true, path: ${dir}/psk2 }\n`), createMemoryLogger(), createMetrics())).toThrow(/transport/);
});

test("a relayNodes edit in the config file reaches the running tunnel; other edits do not call it", async () => {
  const path = join(dir, "agent.yaml");
  const write = (relays: string) => {
    const text = `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1
kind: EdgeMeshAgent
modules:
  edgeTunnel:
    enable: true
    relayNodes:${relays}
`;
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path); // as editors and ConfigMap updates do
  };
  write(" []");
  const calls: RelayNode[][] = [];
  const stop = watchRelayNodes(path, { setRelayNodes: (r) => void calls.push(r) }, loadConfig({ path, env: { NODE_NAME: "n1" } }), createMemoryLogger());
  try {
    write(`\n      - nodeName: r1\n        advertiseAddress: ["10.0.0.5"]`);
    for (let i = 0; i < 100 && calls.length === 0; i++) await Bun.sleep(20);
    expect(calls).toEqual([[{ nodeName: "r1", advertiseAddress: ["10.0.0.5"] }]]);
    write(`\n      - nodeName: r1\n        advertiseAddress: ["10.0.0.5"]`); // same relays: no call
    await Bun.sleep(500);
    expect(calls.length).toBe(1);
    write(`\n      - nodeName: r2\n        advertiseAddress: ["10.0.0.6", "10.0.0.7"]`);
    for (let i = 0; i < 100 && calls.length === 1; i++) await Bun.sleep(20);
    expect(calls[1]).toEqual([{ nodeName: "r2", advertiseAddress: ["10.0.0.6", "10.0.0.7"] }]);
  } finally {
    stop();
  }
});
