// EdgeMesh wire-compatibility vectors (shared/vectors/edgemesh-compat.md, produced by EdgeMesh
// v1.17's own Go code): identities from node names, the pnet key from a PSK file, stream headers.
import { describe, expect, test } from "bun:test";
import {
  decodeDiscovery,
  decodeProxy,
  ed25519SeedFromNodeName,
  encodeDiscovery,
  encodeProxy,
  GoRand,
  MAX_HEADER_BYTES,
  MsgType,
  peerIdFromNodeName,
  pskKeyFromFile,
  seedFromNodeName,
  TunnelError,
  type DiscoveryMsg,
  type ProxyMsg,
} from "../../src/tunnel/index.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

const identities = [
  ["node1", 1604766864643311588n, "c30ab4b9020a2edb10369cc7506b41bae4fceb9de871789839d056df321de768", "12D3KooW9yF6fZvnMC3zxXSrxZSq1JM8otuwz7uTQ7FjNfKtFxVK"],
  ["node2", 8685238811158813260n, "6b0172020ede05ad3dbb2e5d91b07b7b72a5de26ddb85df55c8ace657aad5d7d", "12D3KooWACjYCRcEpyZK8gaDnD4qACqfqMQFhZZe878p3j8RZWDt"],
  ["edge-node-01", 864482267877671740n, "de2eb42c1993f8f872bcc57e943530e887f07ae80c1b6416cf95404e370c6631", "12D3KooW9wQk1m8gbFQfGUBcA8mYYn5zfzY6zDYaWB6c8yqbXhps"],
  ["k8s-master", -4147060428500537262n, "a58a62add392dcc52ed5fb5d2a0a9f13249500dfb994ee1b31499254d5204176", "12D3KooWB5qVCMrMNLpBDfMu6o4dy6ci2UqDVsFVomcd2PfYVzfW"],
  ["a", 919145239626757800n, "87afe0250afdea6d2027629eec35651258ef23f9900f873489e92d63c65a6191", "12D3KooWF2Fbwjy8BPjsviaV1yjD1c6jEUXdHMyd5edEgfwxYDN4"],
  ["relay", 3563610339116392026n, "3b492d5712ec9d7932de6c31054c17329627cc90534a54445e13c300f9d79c03", "12D3KooWCDFKaEq8SUYx1H66rNctM8kfsESGGDDUuStgjZUko7r7"],
] as const;

describe("peer identity from the node name", () => {
  for (const [name, seed, edSeed, peerId] of identities) {
    test(`${name}: md5 seed, Ed25519 seed and peer ID match EdgeMesh`, async () => {
      expect(seedFromNodeName(name)).toBe(seed);
      expect(hex(ed25519SeedFromNodeName(name))).toBe(edSeed);
      expect(await peerIdFromNodeName(name)).toBe(peerId);
    });
  }

  test("Go's Read keeps the unused bytes of an Int63 for the next call", () => {
    const whole = new GoRand(42n).read(new Uint8Array(20));
    const r = new GoRand(42n);
    const parts = [...r.read(new Uint8Array(3)), ...r.read(new Uint8Array(10)), ...r.read(new Uint8Array(7))];
    expect(parts).toEqual([...whole]);
  });

  test("a seed of 0 (mod 2^31-1) uses Go's fallback seed, like Go", () => {
    const zero = new GoRand(0n).int63();
    expect(new GoRand(2147483647n).int63()).toBe(zero);
    expect(new GoRand(89482311n).int63()).toBe(zero);
    expect(new GoRand(1n).int63()).not.toBe(zero);
  });
});

describe("pnet key from the PSK file", () => {
  const rows = [
    ["secret\n", "6f7edee7471e75c7777b77f57dfeb87f869f734e36db4f3869eebde36e7771fd"],
    ["edge-cluster-psk", "e5ff1bdbbede7f769bd79e7cf366ded1d75bdb7df5d77e7773873a7bb736e7b7"],
    ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "f74e5fdbc75e7f5f1e69a734e5a7ba7f5d9bd9cdf8e76ef8e1a7da7fadba75ad"],
  ] as const;
  for (const [file, key] of rows) {
    test(`${JSON.stringify(file)} gives EdgeMesh's key`, () => {
      const out = pskKeyFromFile(new TextEncoder().encode(file));
      expect(out.length).toBe(32);
      expect(hex(out)).toBe(key);
    });
  }
});

describe("stream headers", () => {
  const proxies: [ProxyMsg, string][] = [
    [{ type: MsgType.CONNECT, protocol: "tcp", nodeName: "node2", ip: "10.244.2.10", port: 8080 }, "1e080012037463701a056e6f646532220b31302e3234342e322e313028903f"],
    [{ type: MsgType.SUCCESS }, "020801"],
    [{ type: MsgType.FAILED }, "020802"],
    [{ type: MsgType.CONNECT, protocol: "udp", nodeName: "edge-node-01", ip: "10.244.3.7", port: 53 }, "23080012037564701a0c656467652d6e6f64652d3031220a31302e3234342e332e372835"],
  ];
  for (const [msg, wire] of proxies) {
    test(`Proxy ${JSON.stringify(msg)} encodes and decodes byte for byte`, () => {
      expect(hex(encodeProxy(msg))).toBe(wire);
      expect(decodeProxy(unhex(wire))).toEqual(msg);
    });
  }
  const discoveries: [DiscoveryMsg, string][] = [
    [{ type: MsgType.CONNECT, protocol: "MDNS", nodeName: "node1" }, "0f080012044d444e531a056e6f646531"],
    [{ type: MsgType.SUCCESS, protocol: "MDNS", nodeName: "node2" }, "0f080112044d444e531a056e6f646532"],
  ];
  for (const [msg, wire] of discoveries) {
    test(`Discovery ${JSON.stringify(msg)} encodes and decodes byte for byte`, () => {
      expect(hex(encodeDiscovery(msg))).toBe(wire);
      expect(decodeDiscovery(unhex(wire))).toEqual(msg);
    });
  }

  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(TunnelError);
      return (err as TunnelError).code;
    }
    return "no error";
  };

  test("a length prefix over 4096 bytes is refused before the body arrives", () => {
    expect(code(() => decodeProxy(unhex("818001")))).toBe("HEADER_TOO_LARGE"); // 16385
    expect(code(() => encodeProxy({ type: 0, nodeName: "x".repeat(MAX_HEADER_BYTES) }))).toBe("HEADER_TOO_LARGE");
  });

  test("truncated, mistyped and garbage headers are MALFORMED_HEADER", () => {
    expect(code(() => decodeProxy(unhex("0508001203")))).toBe("MALFORMED_HEADER"); // string runs past the end
    expect(code(() => decodeProxy(unhex("021203")))).toBe("MALFORMED_HEADER"); // body truncated
    expect(code(() => decodeProxy(unhex("020a00")))).toBe("MALFORMED_HEADER"); // type sent as bytes
    expect(code(() => decodeProxy(unhex("020f00")))).toBe("MALFORMED_HEADER"); // wire type 7
    expect(code(() => decodeProxy(unhex("03120280ff")))).toBe("MALFORMED_HEADER"); // invalid UTF-8
    expect(code(() => decodeProxy(unhex("02080100")))).toBe("MALFORMED_HEADER"); // trailing byte
    expect(code(() => decodeProxy(unhex("ffffffffff0f")))).toBe("MALFORMED_HEADER"); // varint too long
  });

  test("unknown fields are skipped and negative int32 ports round-trip", () => {
    // field 9 varint and field 10 bytes, then type SUCCESS
    expect(decodeProxy(unhex("074801520161" + "0801"))).toEqual({ type: 1 });
    const msg = { type: 0, port: -1 };
    expect(encodeProxy(msg).length).toBe(1 + 2 + 11);
    expect(decodeProxy(encodeProxy(msg))).toEqual(msg);
  });
});
