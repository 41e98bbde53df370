import { describe, expect, test } from "bun:test";
import { planRoutes, routeCommands, ROUTE_PROTO, type RouteEntry } from "../../src/host/index.ts";

const ours = (dst: string, prefsrc?: string): RouteEntry => ({ dst, dev: "edge_tun0", protocol: String(ROUTE_PROTO), ...(prefsrc ? { prefsrc } : {}) });

describe("planRoutes: the desired tunneled CIDRs against the main table", () => {
  test("adds what is missing, keeps what is there, removes our stale routes", () => {
    const plan = planRoutes("edge_tun0", ["10.244.2.0/24", "10.244.3.0/24"], [ours("10.244.3.0/24"), ours("10.244.9.0/24"), { dst: "default", dev: "eth0" }]);
    expect(plan).toEqual({ add: ["10.244.2.0/24"], remove: ["10.244.9.0/24"], conflicts: [], kept: 1 });
  });

  test("routes on our device made by someone else (another protocol) are not ours to remove", () => {
    const plan = planRoutes("edge_tun0", [], [{ dst: "10.1.0.0/16", dev: "edge_tun0", protocol: "boot" }]);
    expect(plan.remove).toEqual([]);
  });

  test("a prefix another device routes is a conflict, not replaced", () => {
    const plan = planRoutes("edge_tun0", ["10.244.2.0/24"], [{ dst: "10.244.2.0/24", dev: "flannel.1", protocol: "boot" }]);
    expect(plan).toEqual({ add: [], remove: [], conflicts: [{ cidr: "10.244.2.0/24", dev: "flannel.1" }], kept: 0 });
  });

  test("a changed source address re-installs the route", () => {
    expect(planRoutes("edge_tun0", ["10.244.2.0/24"], [ours("10.244.2.0/24")], "10.244.1.1").add).toEqual(["10.244.2.0/24"]);
    expect(planRoutes("edge_tun0", ["10.244.2.0/24"], [ours("10.244.2.0/24", "10.244.1.1")], "10.244.1.1").kept).toBe(1);
  });

  test("host routes as ip prints them (no /32) compare equal to /32 CIDRs", () => {
    expect(planRoutes("edge_tun0", ["10.9.9.9/32"], [ours("10.9.9.9")]).kept).toBe(1);
  });

  test("one ip -batch line per change, removals first", () => {
    const plan = planRoutes("edge_tun0", ["10.244.2.0/24"], [ours("10.244.9.0/24")]);
    expect(routeCommands("edge_tun0", plan, "10.244.1.1")).toEqual([
      `route del 10.244.9.0/24 dev edge_tun0 proto ${ROUTE_PROTO}`,
      `route replace 10.244.2.0/24 dev edge_tun0 proto ${ROUTE_PROTO} src 10.244.1.1`,
    ]);
  });
});
