// Secure-mode identity: a random Ed25519 key kept in a file that only root can read.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { loadOrCreateKey, peerIdFromNodeName, TunnelError } from "../../src/tunnel/index.ts";

const dir = mkdtempSync(join(tmpdir(), "tunnel-identity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the key file is created with mode 0600 and the same key is loaded again", async () => {
  const file = join(dir, "sub", "node.key");
  const first = await loadOrCreateKey(file);
  expect(first.type).toBe("Ed25519");
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const again = await loadOrCreateKey(file);
  expect(peerIdFromPrivateKey(again).toString()).toBe(peerIdFromPrivateKey(first).toString());
  expect(peerIdFromPrivateKey(first).toString()).not.toBe(await peerIdFromNodeName("node1"));
});

test("a key file that is not a libp2p key is refused with BAD_KEY naming the file", async () => {
  const file = join(dir, "garbage.key");
  writeFileSync(file, "not a key");
  let err: unknown;
  try {
    await loadOrCreateKey(file);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TunnelError);
  expect((err as TunnelError).code).toBe("BAD_KEY");
  expect((err as TunnelError).message).toContain(file);
});
