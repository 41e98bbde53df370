// libp2p's per-stream "peer speaks protocol P" peer-store merge is written once per
// (peer, protocol) and connection; everything else reaches the store.
import { expect, test } from "bun:test";
import { peerIdFromString } from "@libp2p/peer-id";
import { skipRepeatedProtocolMerges } from "../../src/tunnel/peerstore-cache.ts";

const A = peerIdFromString("12D3KooWHrDCX8PsW76GEQuSxqJiNJHo2RCUV25XNdGjnAaovWnL");
const B = peerIdFromString("12D3KooWGYFK7zSgbxYBaWV3dNSyyaZqkp5NSDzAHfyo4fFxVcDh");

function fakeNode() {
  const calls: unknown[] = [];
  const listeners: Record<string, (evt: { detail: unknown }) => void> = {};
  const peerStore = {
    merge: async (peer: unknown, data: unknown) => {
      calls.push(data);
      return { id: peer, n: calls.length };
    },
  };
  const node = {
    peerStore,
    addEventListener: (type: string, fn: (evt: { detail: unknown }) => void) => void (listeners[type] = fn),
  };
  return { node, calls, emit: (type: string, detail: unknown) => listeners[type]!({ detail }) };
}

test("a repeated protocol merge resolves without touching the store", async () => {
  const { node, calls } = fakeNode();
  const stats = skipRepeatedProtocolMerges(node as never);
  const first = await node.peerStore.merge(A, { protocols: ["/p/1"] });
  const again = await node.peerStore.merge(A, { protocols: ["/p/1"] });
  expect(calls.length).toBe(1);
  expect(again).toBe(first);
  expect(stats.skipped).toBe(1);
  await node.peerStore.merge(A, { protocols: ["/p/2"] }); // new protocol: written
  await node.peerStore.merge(B, { protocols: ["/p/1"] }); // other peer: written
  expect(calls.length).toBe(3);
  await node.peerStore.merge(A, { protocols: ["/p/1", "/p/2"] }); // both known
  expect(calls.length).toBe(3);
});

test("other merges go through and make the next protocol merge go through too", async () => {
  const { node, calls } = fakeNode();
  skipRepeatedProtocolMerges(node as never);
  await node.peerStore.merge(A, { protocols: ["/p/1"] });
  await node.peerStore.merge(A, { multiaddrs: [] } as never);
  await node.peerStore.merge(A, { protocols: ["/p/1"] });
  expect(calls).toEqual([{ protocols: ["/p/1"] }, { multiaddrs: [] }, { protocols: ["/p/1"] }]);
});

test("a disconnect forgets the peer (its record may be pruned)", async () => {
  const { node, calls, emit } = fakeNode();
  skipRepeatedProtocolMerges(node as never);
  await node.peerStore.merge(A, { protocols: ["/p/1"] });
  emit("peer:disconnect", A);
  await node.peerStore.merge(A, { protocols: ["/p/1"] });
  expect(calls.length).toBe(2);
});
