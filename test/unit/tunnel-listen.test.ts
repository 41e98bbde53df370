// Listen addresses chosen like EdgeMesh: IPv4 of every interface but bridges/CNI/tunnels.
import { expect, test } from "bun:test";
import type { NetworkInterfaceInfo } from "node:os";
import { listenAddrsFromInterfaces, TunnelError } from "../../src/tunnel/index.ts";

const v4 = (address: string): NetworkInterfaceInfo => ({ address, family: "IPv4", netmask: "255.255.255.0", mac: "00:00:00:00:00:00", internal: false, cidr: `${address}/24` });
const v6 = (address: string): NetworkInterfaceInfo => ({ address, family: "IPv6", netmask: "ffff::", mac: "00:00:00:00:00:00", internal: false, cidr: `${address}/64`, scopeid: 0 });
const interfaces = {
  lo: [v4("127.0.0.1")],
  eth0: [v4("192.168.1.10"), v6("fe80::1")],
  docker0: [v4("172.17.0.1")],
  edgemesh0: [v4("169.254.96.16")],
  cni0: [v4("10.244.0.1")],
  "flannel.1": [v4("10.244.0.0")],
  "kube-ipvs0": [v4("10.96.0.1")],
  wg0: [v4("10.9.0.1")],
};

test("every IPv4 address except on filtered interfaces, for TCP and QUIC", () => {
  expect(listenAddrsFromInterfaces({ port: 20006, transport: "both", interfaces })).toEqual([
    "/ip4/192.168.1.10/tcp/20006",
    "/ip4/192.168.1.10/udp/20006/quic-v1",
    "/ip4/127.0.0.1/tcp/20006",
    "/ip4/127.0.0.1/udp/20006/quic-v1",
    "/ip4/10.9.0.1/tcp/20006",
    "/ip4/10.9.0.1/udp/20006/quic-v1",
  ]);
});

test("listenInterfaces narrows the set, extraFilteredInterfaces widens the filter", () => {
  expect(listenAddrsFromInterfaces({ port: 1, transport: "tcp", listenInterfaces: "eth0, wg0", extraFilteredInterfaces: ["wg"], interfaces })).toEqual(["/ip4/192.168.1.10/tcp/1"]);
  expect(listenAddrsFromInterfaces({ port: 1, transport: "tcp", listenInterfaces: "docker0", interfaces })).toEqual([]);
});

test("a listenInterfaces entry that does not exist is an error naming it", () => {
  expect(() => listenAddrsFromInterfaces({ port: 1, transport: "tcp", listenInterfaces: "eth9", interfaces })).toThrow(TunnelError);
  expect(() => listenAddrsFromInterfaces({ port: 1, transport: "tcp", listenInterfaces: "eth9", interfaces })).toThrow("eth9");
});
