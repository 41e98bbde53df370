// Node identities. Compat mode (EdgeMesh's): the Ed25519 seed is read from Go's math/rand seeded
// with md5(nodeName), so anyone can compute any node's peer ID (and key) from its name. Secure
// mode: a random key kept in a file, and a list of allowed peer IDs enforced by the gater.
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { TunnelError } from "./errors.ts";
import { GoRand } from "./gorand.ts";

/** md5(name)[0..8] as a big-endian signed int64: EdgeMesh's math/rand seed for a node. */
export function seedFromNodeName(name: string): bigint {
  const digest = createHash("md5").update(name).digest();
  return digest.readBigInt64BE(0);
}

/** The 32-byte Ed25519 seed EdgeMesh's ed25519.GenerateKey reads from math/rand. */
export function ed25519SeedFromNodeName(name: string): Uint8Array {
  return new GoRand(seedFromNodeName(name)).read(new Uint8Array(32));
}

export async function privateKeyFromNodeName(name: string): Promise<PrivateKey> {
  return generateKeyPairFromSeed("Ed25519", ed25519SeedFromNodeName(name));
}

/** The peer ID (base58) of the EdgeMesh node called `name` in compat mode. */
export async function peerIdFromNodeName(name: string): Promise<string> {
  return peerIdFromPrivateKey(await privateKeyFromNodeName(name)).toString();
}

/**
 * Secure mode: load the node's key from `keyFile` (libp2p protobuf encoding), creating a random
 * Ed25519 key there (mode 0600, written atomically) when the file does not exist.
 */
export async function loadOrCreateKey(keyFile: string): Promise<PrivateKey> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (bytes) {
    try {
      return privateKeyFromProtobuf(bytes);
    } catch (err) {
      throw new TunnelError("BAD_KEY", `key file ${keyFile} is not a libp2p private key: ${(err as Error).message}`);
    }
  }
  const key = await generateKeyPair("Ed25519");
  await mkdir(dirname(keyFile), { recursive: true });
  const tmp = `${keyFile}.tmp-${process.pid}`;
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, keyFile);
  return key;
}
