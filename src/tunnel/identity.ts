// Node identities. Compat mode (EdgeMesh's): the Ed25519 seed is read from Go's math/rand seeded
// with md5(nodeName), so anyone can compute any node's peer ID (and key) from its name. Secure
// mode: a random key kept in a file, and a list of allowed peer IDs enforced by the gater.
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
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

/** Longest peer ID string accepted from published metadata (an Ed25519 ID is 52 characters;
 * RSA IDs are 46; CIDv1 forms are longer but well under this). */
const MAX_PEER_ID_CHARS = 128;

/**
 * True when `s` is a libp2p peer ID string (base58btc multihash or CIDv1). Secure mode reads
 * peer IDs that other agents published in Node annotations; anything else is ignored there.
 */
export function isPeerIdString(s: unknown): s is string {
  if (typeof s !== "string" || s.length === 0 || s.length > MAX_PEER_ID_CHARS) return false;
  try {
    return peerIdFromString(s).toString() === s;
  } catch {
    return false;
  }
}
