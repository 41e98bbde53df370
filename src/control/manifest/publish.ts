// The manifest folder's counterpart of a Node PATCH: an agent publishes annotations of its own
// Node (secure mode: its tunnel peer ID) as ".edgemesh-peer-<node>.yaml" in the folder every
// agent of the site reads. A dotfile, so `kubectl apply -f DIR` and editors' globs skip it; the
// manifest source reads it on purpose (source.ts). Written atomically (temp file + rename in the
// same folder) so a reader never parses half of it.

import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dump } from "js-yaml";

export const PEER_MANIFEST_PREFIX = ".edgemesh-peer-";
const PEER_MANIFEST_SUFFIX = ".yaml";
/** A Kubernetes node name is a DNS-1123 subdomain; anything else cannot name a file safely. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isPeerManifest(fileName: string): boolean {
  return fileName.startsWith(PEER_MANIFEST_PREFIX) && fileName.endsWith(PEER_MANIFEST_SUFFIX);
}

export function peerManifestFile(nodeName: string): string {
  if (!NODE_NAME.test(nodeName)) throw new Error(`node name ${JSON.stringify(nodeName)} is not a DNS-1123 subdomain`);
  return `${PEER_MANIFEST_PREFIX}${nodeName}${PEER_MANIFEST_SUFFIX}`;
}

/** The YAML text of a publication: a Node carrying only its name and the annotations. */
export function peerManifestYaml(nodeName: string, annotations: Record<string, string>): string {
  const node = { apiVersion: "v1", kind: "Node", metadata: { name: nodeName, annotations } };
  return `# Written by the edgemesh agent on ${nodeName}; other agents read it. Do not edit.\n${dump(node, { lineWidth: -1 })}`;
}

/** Write (or replace) a publication of annotations of Node `nodeName` in `dir`; returns its path. */
export async function writePeerManifest(dir: string, nodeName: string, annotations: Record<string, string>, fileTag = nodeName): Promise<string> {
  // fileTag: whose publication it is ("<node>-gateway" for the gateway on that node), so the
  // gateway and the node's agent each own one file for the same Node.
  const path = join(dir, peerManifestFile(fileTag));
  // The temp name does not end in .yaml, so a scan in between never reads it.
  const tmp = `${path}.tmp-${process.pid}`;
  await mkdir(dir, { recursive: true });
  try {
    await writeFile(tmp, peerManifestYaml(nodeName, annotations));
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  return path;
}
