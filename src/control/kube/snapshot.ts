// The offline snapshot: the last synced metadata, so an agent restarted while the API is
// unreachable starts from it instead of from nothing (EdgeMesh issues #317, #498).
// File: ${stateDir}/metadata.json, written atomically (temp file in the same directory, fsync,
// rename, fsync of the directory) so a crash leaves the old or the new file, never half of one.
// Only the kinds the source watches are saved, already trimmed (trim.ts).

import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { isKind, type Kind, type KubeObject } from "../objects.ts";

export const SNAPSHOT_FILE = "metadata.json";
export const SNAPSHOT_FORMAT = "edgemesh-bun/kube-metadata";
export const SNAPSHOT_VERSION = 1;

export interface MetadataSnapshot {
  /** When the data was last known live (ms since epoch). */
  savedAt: number;
  server: string;
  objects: Partial<Record<Kind, KubeObject[]>>;
}

export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
}

/** Objects serialised per write call: a few ms of work, then the event loop (and the data plane
 * sharing it) gets a turn. Serialising 10k services and 10k slices at once blocks for ~100 ms. */
const OBJECTS_PER_WRITE = 500;

export async function saveSnapshot(stateDir: string, snap: MetadataSnapshot): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const file = join(stateDir, SNAPSHOT_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o600);
  try {
    const head = { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, savedAt: new Date(snap.savedAt).toISOString(), server: snap.server };
    await fh.write(JSON.stringify(head).slice(0, -1) + ',"objects":{');
    let firstKind = true;
    for (const [kind, list] of Object.entries(snap.objects)) {
      await fh.write(`${firstKind ? "" : ","}${JSON.stringify(kind)}:[`);
      firstKind = false;
      for (let i = 0; i < (list?.length ?? 0); i += OBJECTS_PER_WRITE) {
        const part = list!.slice(i, i + OBJECTS_PER_WRITE).map((o) => JSON.stringify(o)).join(",");
        await fh.write(i === 0 ? part : "," + part);
      }
      await fh.write("]");
    }
    await fh.write("}}");
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  // The rename itself is durable only once the directory entry is on disk.
  const dir = await open(stateDir, "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Load and validate; undefined when there is no file, SnapshotError when it is unusable. */
export async function loadSnapshot(stateDir: string): Promise<MetadataSnapshot | undefined> {
  const file = join(stateDir, SNAPSHOT_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SnapshotError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: any;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SnapshotError(`${file} is corrupt: ${(err as Error).message}`);
  }
  if (doc?.format !== SNAPSHOT_FORMAT) throw new SnapshotError(`${file} is not a metadata snapshot (format ${JSON.stringify(doc?.format)})`);
  if (doc.version !== SNAPSHOT_VERSION) throw new SnapshotError(`${file} has version ${doc.version}, this agent reads ${SNAPSHOT_VERSION}`);
  const savedAt = Date.parse(doc.savedAt);
  if (!Number.isFinite(savedAt)) throw new SnapshotError(`${file} has no valid savedAt`);
  if (typeof doc.objects !== "object" || doc.objects === null) throw new SnapshotError(`${file} has no objects`);
  const objects: Partial<Record<Kind, KubeObject[]>> = {};
  for (const [kind, list] of Object.entries(doc.objects)) {
    if (!isKind(kind)) throw new SnapshotError(`${file} has unknown kind ${kind}`);
    if (!Array.isArray(list)) throw new SnapshotError(`${file}: ${kind} is not a list`);
    for (const obj of list) {
      if (typeof obj?.metadata?.name !== "string") throw new SnapshotError(`${file}: a ${kind} has no metadata.name`);
    }
    objects[kind] = list as KubeObject[];
  }
  return { savedAt, server: String(doc.server ?? ""), objects };
}
