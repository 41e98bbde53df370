// The SOCKS5 listener's pure parts: RFC 1928 parsing (every malformed shape), the pick of a node
// for a request, the reply for a failed dial, and the "this node" address set of the far side.

import { describe, expect, test } from "bun:test";
import type { KubeObject } from "../../src/control/index.ts";
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  CMD_BIND,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  createHostAddresses,
  decide,
  NEED_MORE,
  nodeDirectory,
  parseGreeting,
  parseRequest,
  REP_ADDRESS_TYPE_NOT_SUPPORTED,
  REP_COMMAND_NOT_SUPPORTED,
  REP_CONNECTION_REFUSED,
  REP_GENERAL_FAILURE,
  REP_HOST_UNREACHABLE,
  REP_NETWORK_UNREACHABLE,
  REP_NOT_ALLOWED,
  replyForDialError,
  reply,
  type SocksPlan,
} from "../../src/hotpath/socks5/index.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const domainRequest = (name: string, port: number, cmd = CMD_CONNECT) =>
  bytes(5, cmd, 0, ATYP_DOMAIN, name.length, ...[...name].map((c) => c.charCodeAt(0)), port >> 8, port & 0xff);

describe("greeting", () => {
  test("a greeting offering no-auth among others is accepted whole", () => {
    const g = parseGreeting(bytes(5, 3, 2, 0, 1), 0, 5);
    expect(g).toEqual({ consumed: 5, noAuth: true, error: "" });
  });
  test("a greeting offering only username/password parses, without no-auth", () => {
    expect(parseGreeting(bytes(5, 1, 2), 0, 3)).toEqual({ consumed: 3, noAuth: false, error: "" });
  });
  test("a greeting cut anywhere asks for more bytes", () => {
    const full = bytes(5, 2, 0, 2);
    for (let n = 0; n < full.length; n++) expect(parseGreeting(full, 0, n).consumed).toBe(NEED_MORE);
  });
  test("a greeting is parsed at an offset, bytes after it untouched", () => {
    const buf = bytes(9, 9, 5, 1, 0, 5, 1);
    expect(parseGreeting(buf, 2, buf.length)).toEqual({ consumed: 3, noAuth: true, error: "" });
  });
  test("SOCKS4, HTTP and zero methods are malformed", () => {
    expect(parseGreeting(bytes(4, 1, 0, 80), 0, 4).error).toContain("version 4");
    expect(parseGreeting(new TextEncoder().encode("GET / HTTP/1.1\r\n"), 0, 16).error).toContain("not SOCKS5");
    expect(parseGreeting(bytes(5, 0), 0, 2).error).toContain("no methods");
  });
});

describe("request", () => {
  test("CONNECT to a domain name (what curl --socks5-hostname and nc -X 5 send)", () => {
    const r = parseRequest(domainRequest("node-b", 22), 0, 13);
    expect(r.error).toBe("");
    expect(r.consumed).toBe(13);
    expect(r.request).toEqual({ command: CMD_CONNECT, addressType: ATYP_DOMAIN, host: "node-b", port: 22 });
  });
  test("CONNECT to an IPv4 address", () => {
    const r = parseRequest(bytes(5, 1, 0, ATYP_IPV4, 192, 168, 2, 11, 0x1f, 0x90), 0, 10);
    expect(r.request).toEqual({ command: 1, addressType: ATYP_IPV4, host: "192.168.2.11", port: 8080 });
  });
  test("an IPv6 address is read (and later refused), so the reply can be sent", () => {
    const addr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const r = parseRequest(bytes(5, 1, 0, ATYP_IPV6, ...addr, 0, 22), 0, 22);
    expect(r.consumed).toBe(22);
    expect(r.request?.host).toBe("2001:db8:0:0:0:0:0:1");
  });
  test("an unknown address type ends the request after four bytes", () => {
    const r = parseRequest(bytes(5, 1, 0, 9, 1, 2, 3), 0, 7);
    expect(r.consumed).toBe(4);
    expect(r.request?.addressType).toBe(9);
  });
  test("a request cut anywhere asks for more bytes", () => {
    const full = domainRequest("n2", 2222);
    for (let n = 0; n < full.length; n++) expect(parseRequest(full, 0, n).consumed).toBe(NEED_MORE);
    expect(parseRequest(full, 0, full.length).consumed).toBe(full.length);
  });
  test("bad version, a non-zero reserved byte and an empty name are malformed", () => {
    expect(parseRequest(bytes(4, 1, 0, 1, 1, 2, 3, 4, 0, 80), 0, 10).error).toContain("version 4");
    expect(parseRequest(bytes(5, 1, 7, 1, 1, 2, 3, 4, 0, 80), 0, 10).error).toContain("reserved");
    expect(parseRequest(bytes(5, 1, 0, 3, 0, 0, 80), 0, 7).error).toContain("empty domain");
  });
});

describe("replies", () => {
  test("a reply is VER REP RSV, an IPv4 0.0.0.0:0 bound address (EdgeMesh's success reply)", () => {
    expect([...reply(0)]).toEqual([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect([...reply(REP_HOST_UNREACHABLE)]).toEqual([5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(reply(5)).toBe(reply(5)); // shared, not built per connection
  });
  test("dial errors map to their reply codes", () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(replyForDialError(err("PROXY_REFUSED"))).toBe(REP_CONNECTION_REFUSED);
    expect(replyForDialError(err("ECONNREFUSED"))).toBe(REP_CONNECTION_REFUSED);
    expect(replyForDialError(err("NO_PEER"))).toBe(REP_HOST_UNREACHABLE);
    expect(replyForDialError(err("ETIMEDOUT"))).toBe(REP_HOST_UNREACHABLE);
    expect(replyForDialError(err("EHOSTUNREACH"))).toBe(REP_HOST_UNREACHABLE);
    expect(replyForDialError(err("ENETUNREACH"))).toBe(REP_NETWORK_UNREACHABLE);
    expect(replyForDialError(err("STREAM_LIMIT"))).toBe(REP_GENERAL_FAILURE);
    expect(replyForDialError(null)).toBe(REP_GENERAL_FAILURE);
  });
});

const node = (name: string, addresses: { type: string; address: string }[]): KubeObject => ({ kind: "Node", metadata: { name }, status: { addresses } });
const NODES = [
  node("n1", [{ type: "InternalIP", address: "192.168.1.11" }, { type: "Hostname", address: "n1" }]),
  node("node-b", [
    { type: "ExternalIP", address: "203.0.113.7" },
    { type: "InternalIP", address: "fd00::2" },
    { type: "InternalIP", address: "192.168.2.11" },
  ]),
  node("cloud", [{ type: "ExternalIP", address: "198.51.100.1" }]),
  node("bare", []),
];

describe("the pick: which node a request reaches", () => {
  const dir = nodeDirectory(NODES);
  const req = (host: string, port = 22, extra: { command?: number; addressType?: number } = {}) =>
    ({ command: CMD_CONNECT, addressType: /^\d+\.\d+\.\d+\.\d+$/.test(host) ? ATYP_IPV4 : ATYP_DOMAIN, host, port, ...extra }) as const;
  const connect = (node: string, ip: string, port: number, local = false): SocksPlan => ({ kind: "connect", node, ip, port, local });

  test("the directory dials a node's first IPv4 InternalIP, else its ExternalIP", () => {
    expect(dir.byName.get("node-b")).toBe("192.168.2.11");
    expect(dir.byName.get("cloud")).toBe("198.51.100.1");
    expect(dir.byName.get("bare")).toBe("");
    expect(dir.byAddress.get("203.0.113.7")).toBe("node-b");
    expect(dir.byAddress.has("fd00::2")).toBe(false);
  });
  test("a node name reaches that node's address through the tunnel", () => {
    expect(decide(req("node-b"), dir, "n1")).toEqual(connect("node-b", "192.168.2.11", 22));
  });
  test("names are matched without case and with a trailing dot", () => {
    expect(decide(req("Node-B."), dir, "n1")).toEqual(connect("node-b", "192.168.2.11", 22));
  });
  test("any IPv4 address a node lists reaches that node, at that address", () => {
    expect(decide(req("203.0.113.7", 8080), dir, "n1")).toEqual(connect("node-b", "203.0.113.7", 8080));
    // curl --socks5-hostname sends an IP literal as a domain
    expect(decide(req("192.168.2.11", 22, { addressType: ATYP_DOMAIN }), dir, "n1")).toEqual(connect("node-b", "192.168.2.11", 22));
  });
  test("this node is dialed directly (EdgeMesh refuses it)", () => {
    expect(decide(req("n1"), dir, "n1")).toEqual(connect("n1", "192.168.1.11", 22, true));
  });
  test("an unknown name is host unreachable, and so is a node without an IPv4 address", () => {
    expect(decide(req("nowhere"), dir, "n1")).toMatchObject({ kind: "refuse", code: REP_HOST_UNREACHABLE });
    expect(decide(req("bare"), dir, "n1")).toMatchObject({ kind: "refuse", code: REP_HOST_UNREACHABLE });
  });
  test("an address no node lists is not allowed: the listener is no open proxy", () => {
    expect(decide(req("10.96.0.1", 443), dir, "n1")).toMatchObject({ kind: "refuse", code: REP_NOT_ALLOWED });
    expect(decide(req("8.8.8.8", 53), dir, "n1")).toMatchObject({ kind: "refuse", code: REP_NOT_ALLOWED });
  });
  test("BIND and UDP ASSOCIATE are not supported", () => {
    expect(decide(req("node-b", 22, { command: CMD_BIND }), dir, "n1")).toMatchObject({ code: REP_COMMAND_NOT_SUPPORTED });
    expect(decide(req("node-b", 22, { command: CMD_UDP_ASSOCIATE }), dir, "n1")).toMatchObject({ code: REP_COMMAND_NOT_SUPPORTED });
  });
  test("IPv6 and unknown address types are answered X'08'", () => {
    expect(decide({ command: 1, addressType: ATYP_IPV6, host: "0:0:0:0:0:0:0:1", port: 22 }, dir, "n1")).toMatchObject({ code: REP_ADDRESS_TYPE_NOT_SUPPORTED });
    expect(decide({ command: 1, addressType: 9, host: "", port: 0 }, dir, "n1")).toMatchObject({ code: REP_ADDRESS_TYPE_NOT_SUPPORTED });
  });
  test("port 0 is not allowed", () => {
    expect(decide(req("node-b", 0), dir, "n1")).toMatchObject({ code: REP_NOT_ALLOWED });
  });
  test("a refusal reason is safe to log whatever bytes the name had", () => {
    const plan = decide(req("a\u0000b\nc"), dir, "n1");
    expect(plan.kind === "refuse" && /[\u0000\n]/.test(plan.reason)).toBe(false);
  });
});

describe("the far side: this node's own addresses", () => {
  const dir = nodeDirectory(NODES);
  const ifs = (addrs: string[]) => () => ({
    lo: [{ address: "127.0.0.1", family: "IPv4", internal: true } as never],
    eth0: addrs.map((address) => ({ address, family: "IPv4", internal: false }) as never),
  });
  test("the own Node's addresses and the host's interface addresses count, nothing else", () => {
    const h = createHostAddresses({ nodeName: "node-b", nodes: () => dir, exclude: ["169.254.96.16"], interfaces: ifs(["192.168.2.11", "10.244.2.1", "169.254.96.16"]) });
    expect(h.has("203.0.113.7")).toBe(true); // listed on its Node, not on an interface
    expect(h.has("10.244.2.1")).toBe(true); // on an interface
    expect(h.has("192.168.1.11")).toBe(false); // another node's
    expect(h.has("169.254.96.16")).toBe(false); // the bridge: our own listeners
    expect(h.has("127.0.0.1")).toBe(false);
    expect(h.has("10.244.2.10")).toBe(false); // a pod
  });
  test("interfaces are read again only after the refresh interval", () => {
    let now = 0;
    let addrs = ["10.0.0.1"];
    let reads = 0;
    const h = createHostAddresses({
      nodeName: "x",
      nodes: () => dir,
      exclude: [],
      interfaces: () => (reads++, ifs(addrs)()),
      clock: { now: () => now },
    });
    expect(h.has("10.0.0.1")).toBe(true);
    addrs = ["10.0.0.2"];
    now = 1000;
    expect(h.has("10.0.0.2")).toBe(false);
    now = 6000;
    expect(h.has("10.0.0.2")).toBe(true);
    expect(reads).toBe(2);
  });
});
