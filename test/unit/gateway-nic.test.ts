import { describe, expect, test } from "bun:test";
import { createManualClock } from "../../src/control/clock.ts";
import { createNicSource, selectAddresses, type InterfaceList } from "../../src/control/gateway/index.ts";
import { resolveConfig } from "../../src/control/config/index.ts";

const v4 = (address: string) => ({ address, family: "IPv4" });
const v6 = (address: string) => ({ address, family: "IPv6" });

const NICS: InterfaceList = {
  lo: [v4("127.0.0.1"), v6("::1")],
  eth0: [v4("192.168.1.56"), v4("192.168.1.57"), v6("fe80::1")],
  eth1: [v4("10.3.2.1")],
  wlan0: [v4("172.16.0.9")],
};

describe("selectAddresses (EdgeMesh's GetIPsNeedListen)", () => {
  test('nic "*" takes the IPv4 addresses of every interface, loopback included, sorted', () => {
    expect(selectAddresses(NICS, { nic: "*", includeIP: "*", excludeIP: "*" }).addresses).toEqual(["10.3.2.1", "127.0.0.1", "172.16.0.9", "192.168.1.56", "192.168.1.57"]);
    expect(selectAddresses(NICS, { nic: "", includeIP: "", excludeIP: "" }).addresses.length).toBe(5);
  });

  test("a nic list takes only those interfaces; names that do not exist are reported, not fatal", () => {
    const r = selectAddresses(NICS, { nic: "eth0, eth9", includeIP: "*", excludeIP: "*" });
    expect(r.addresses).toEqual(["192.168.1.56", "192.168.1.57"]);
    expect(r.missing).toEqual(["eth9"]);
  });

  test("includeIP keeps matching IPs and CIDRs; excludeIP then drops IPs and CIDRs", () => {
    expect(selectAddresses(NICS, { nic: "*", includeIP: "192.168.1.0/24,10.3.2.1", excludeIP: "*" }).addresses).toEqual(["10.3.2.1", "192.168.1.56", "192.168.1.57"]);
    expect(selectAddresses(NICS, { nic: "*", includeIP: "*", excludeIP: "127.0.0.0/8,192.168.1.57" }).addresses).toEqual(["10.3.2.1", "172.16.0.9", "192.168.1.56"]);
    expect(selectAddresses(NICS, { nic: "eth0", includeIP: "192.168.1.0/24", excludeIP: "192.168.1.56/32" }).addresses).toEqual(["192.168.1.57"]);
    expect(selectAddresses(NICS, { nic: "*", includeIP: "0.0.0.0/0", excludeIP: "" }).addresses.length).toBe(5);
  });

  test("the config accepts CIDRs in includeIP/excludeIP and names the key for garbage", () => {
    const ok = resolveConfig({ kind: "EdgeMeshGateway", modules: { edgeGateway: { enable: true, nic: "eth0", includeIP: "10.0.0.0/8", excludeIP: "10.0.0.1" } } });
    expect(ok.kind).toBe("EdgeMeshGateway");
    expect(ok.apiVersion).toBe("gateway.edgemesh.config.kubeedge.io/v1alpha1");
    expect(ok.modules.edgeGateway.includeIP).toBe("10.0.0.0/8");
    expect(() => resolveConfig({ modules: { edgeGateway: { excludeIP: "10.0.0.0/40" } } })).toThrow(/modules\.edgeGateway\.excludeIP/);
  });
});

describe("createNicSource", () => {
  test("polls on the clock and reports only changes of the selected set", () => {
    const clock = createManualClock(0);
    let nics: InterfaceList = { eth0: [v4("10.0.0.2")] };
    const missing: string[][] = [];
    const src = createNicSource({ selection: { nic: "eth0,eth1", includeIP: "*", excludeIP: "*" }, interfaces: () => nics, clock, intervalMs: 1000, onMissing: (m) => missing.push([...m]) });
    const seen: (readonly string[])[] = [];
    src.subscribe((a) => seen.push(a));
    expect(src.current()).toEqual(["10.0.0.2"]);
    expect(missing).toEqual([["eth1"]]);
    clock.advance(3000);
    expect(seen).toEqual([]);
    nics = { eth0: [v4("10.0.0.2")], eth1: [v4("10.1.0.2")] };
    clock.advance(1000);
    expect(seen).toEqual([["10.0.0.2", "10.1.0.2"]]);
    nics = { eth1: [v4("10.1.0.2")] };
    clock.advance(1000);
    expect(seen.at(-1)).toEqual(["10.1.0.2"]);
    expect(missing.at(-1)).toEqual(["eth0"]);
    src.stop();
    expect(clock.pending()).toBe(0);
  });
});
