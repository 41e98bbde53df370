// The manifest-folder source (dev mode, and agents without an API server): every *.yaml, *.yml
// and *.json file directly inside `dir` (not recursive, like `kubectl apply -f DIR`; dotfiles
// such as editor locks ".#x.yaml" are skipped) is parsed and the kept kinds replace the store's
// content in one store.replace(), so consumers never see half a folder.
//
// Changes are picked up without a restart: fs.watch on the folder (debounced, since an editor
// save is several events) plus a slow periodic rescan, because inotify can miss events (the
// folder replaced, a network file system, a ConfigMap volume swapping its ..data symlink).
// A malformed file is reported (file, line, reason) and logged once per change, and the last
// good content of that file stays in effect, so a half-saved edit loses nothing.
//
// One kind of dotfile is read: ".edgemesh-peer-<node>.yaml", written by agents in secure mode
// (publish.ts) to tell each other their tunnel peer IDs. Such a file only adds its Node's
// annotations: merged into a Node defined by an ordinary file, or a Node of its own; any other
// object in it is ignored, so an agent's publication cannot change services or routes.

import { statSync, watch, type FSWatcher } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../log/index.ts";
import { type Clock, systemClock } from "../clock.ts";
import { KINDS, type Kind, type KubeObject, objectKey } from "../objects.ts";
import type { ObjectStore } from "../store.ts";
import { type ManifestError, type ParsedObject, parseManifest } from "./parse.ts";
import { isPeerManifest } from "./publish.ts";

/** An editor save is a burst of events (truncate, write, rename, chmod): wait for the quiet. */
export const DEFAULT_DEBOUNCE_MS = 50;
/** Safety-net rescan for events fs.watch missed; rescans that find no change cost one read each. */
export const DEFAULT_RESCAN_INTERVAL_MS = 10_000;

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

export interface ManifestSourceOptions {
  dir: string;
  store: ObjectStore;
  log: Logger;
  clock?: Clock;
  debounceMs?: number;
  rescanIntervalMs?: number;
}

export interface ManifestSource {
  /** First scan (rejects if the folder cannot be read), then starts watching. */
  start(): Promise<void>;
  stop(): void;
  /** Scan now; resolves when the store holds the result (scans never overlap). */
  rescan(): Promise<void>;
  /** Files currently malformed; their last good content is still in the store. */
  readonly errors: readonly ManifestError[];
  /** Objects of kinds the store does not keep, in the last scan (e.g. Deployments). */
  readonly ignored: number;
}

interface FileState {
  /** Text last read, good or bad: unchanged text is neither re-parsed nor re-reported. null
   * after a read failure, so the next successful read is always parsed. */
  text: string | null;
  /** Objects of the last good text ([] if the file never parsed). */
  objects: readonly ParsedObject[];
  ignored: number;
  error: ManifestError | undefined;
}

export function createManifestSource(options: ManifestSourceOptions): ManifestSource {
  const { dir, store, log } = options;
  const clock = options.clock ?? systemClock;
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const rescanMs = options.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS;
  const files = new Map<string, FileState>();

  let errors: readonly ManifestError[] = [];
  let ignored = 0;
  let applied = false;
  let stopped = false;
  let watcher: FSWatcher | undefined;
  let debounceTimer: unknown;
  let rescanTimer: unknown;
  let running: Promise<void> | undefined;
  let again = false;

  /** Reads and parses what changed; true if the set of good objects changed. */
  const scanOnce = async (): Promise<boolean> => {
    const names = (await readdir(dir)).filter((n) => MANIFEST_FILE.test(n) && (!n.startsWith(".") || isPeerManifest(n))).sort();
    let changed = false;
    const present = new Set<string>();
    for (const name of names) {
      const path = join(dir, name);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "EISDIR") continue; // gone since readdir, or a folder
        // Unreadable (permissions, I/O): like a malformed file, keep what it held before.
        present.add(name);
        const prev = files.get(name);
        const reason = `cannot read: ${(err as Error).message}`;
        if (prev?.error?.reason !== reason) log.error("manifest unreadable, keeping its last good content", { file: path, reason });
        files.set(name, {
          text: null,
          objects: prev?.objects ?? [],
          ignored: prev?.ignored ?? 0,
          error: { file: path, line: 0, reason, message: `${path}: ${reason}` },
        });
        continue;
      }
      present.add(name);
      const prev = files.get(name);
      if (prev !== undefined && prev.text === text) continue;
      const parsed = parseManifest(path, text);
      if (parsed.ok) {
        files.set(name, { text, objects: parsed.objects, ignored: parsed.ignored, error: undefined });
        changed = true;
        if (prev?.error) log.info("manifest fixed", { file: path });
      } else {
        const e = parsed.error;
        log.error("manifest ignored, keeping its last good content", { file: e.file, line: e.line, reason: e.reason });
        files.set(name, { text, objects: prev?.objects ?? [], ignored: prev?.ignored ?? 0, error: e });
      }
    }
    for (const name of files.keys()) {
      if (present.has(name)) continue;
      files.delete(name);
      changed = true;
    }
    return changed;
  };

  const apply = (): void => {
    const byKind = {} as Record<Kind, KubeObject[]>;
    for (const kind of KINDS) byKind[kind] = [];
    const seen = new Map<string, string>();
    let ignoredNow = 0;
    // In file-name order, so "the later file wins" means the same thing on every scan; peer
    // publications after all ordinary files, since they only add to what those define.
    const ordered = [...files.keys()].sort();
    const peerFiles = ordered.filter(isPeerManifest);
    for (const name of ordered) {
      if (isPeerManifest(name)) continue;
      const state = files.get(name)!;
      ignoredNow += state.ignored;
      for (const { kind, object } of state.objects) {
        const id = `${kind} ${objectKey(object)}`;
        const first = seen.get(id);
        if (first !== undefined) log.warn("object defined twice; the later file wins", { object: id, first, file: name });
        seen.set(id, name);
        byKind[kind].push(object);
      }
    }
    for (const name of peerFiles) {
      const state = files.get(name)!;
      for (const { kind, object } of state.objects) {
        if (kind !== "Node") {
          ignoredNow++;
          continue;
        }
        mergePeerNode(byKind.Node, object);
        seen.set(`Node ${objectKey(object)}`, name);
      }
    }
    ignored = ignoredNow;
    // All kinds at once: objects removed from the folder disappear in the same revision.
    store.replace(byKind);
    log.info("manifests loaded", { dir, files: files.size, objects: seen.size, ignored: ignoredNow, errors: errors.length });
  };

  const scan = async (): Promise<void> => {
    const changed = await scanOnce();
    if (stopped) return;
    errors = Object.freeze([...files.values()].flatMap((s) => (s.error ? [s.error] : [])));
    if (changed || !applied) {
      applied = true;
      apply();
    }
  };

  // Scans are serialized; requests during a scan fold into one more scan after it.
  const rescan = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await scan();
        } while (again && !stopped);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  let lastFailure = "";
  const background = (): void => {
    rescan().then(
      () => {
        lastFailure = "";
      },
      (err) => {
        // A missing folder fails every rescan: say so once, not every interval.
        const message = String((err as Error)?.message ?? err);
        if (message !== lastFailure) log.error("manifest folder scan failed; keeping the last state", { dir, err });
        lastFailure = message;
      },
    );
  };

  const onEvent = (): void => {
    if (stopped) return;
    if (debounceTimer !== undefined) clock.clearTimeout(debounceTimer);
    debounceTimer = clock.setTimeout(() => {
      debounceTimer = undefined;
      background();
    }, debounceMs);
  };

  // inotify watches an inode: a folder deleted and recreated (rm -rf && cp -r, a volume
  // remount) leaves the watcher silent on the old one, so periodic rescans compare inodes.
  let watchedIno = -1;
  const startWatcher = (): void => {
    watcher?.close();
    watcher = undefined;
    try {
      watchedIno = statSync(dir).ino;
      watcher = watch(dir, { persistent: true }, onEvent);
      watcher.on("error", (err) => {
        log.warn("manifest folder watch failed; relying on periodic rescans", { dir, err });
        watcher?.close();
        watcher = undefined;
      });
    } catch (err) {
      log.warn("cannot watch manifest folder; relying on periodic rescans", { dir, err });
    }
  };

  const periodic = (): void => {
    rescanTimer = undefined;
    if (stopped) return;
    if (watcher === undefined || currentIno() !== watchedIno) startWatcher(); // the folder may be back or new
    background();
    rescanTimer = clock.setTimeout(periodic, rescanMs);
  };

  const currentIno = (): number => {
    try {
      return statSync(dir).ino;
    } catch {
      return -1;
    }
  };

  return {
    async start() {
      await rescan();
      if (stopped) return;
      startWatcher();
      if (rescanMs > 0) rescanTimer = clock.setTimeout(periodic, rescanMs);
    },
    stop() {
      stopped = true;
      watcher?.close();
      watcher = undefined;
      if (debounceTimer !== undefined) clock.clearTimeout(debounceTimer);
      if (rescanTimer !== undefined) clock.clearTimeout(rescanTimer);
      debounceTimer = rescanTimer = undefined;
    },
    rescan,
    get errors() {
      return errors;
    },
    get ignored() {
      return ignored;
    },
  };
}

/**
 * Adds a peer publication's annotations to the Node of that name (a copy: parsed objects are
 * kept per file and must not change), or adds the publication as the Node when none exists.
 */
function mergePeerNode(nodes: KubeObject[], published: KubeObject): void {
  const i = nodes.findIndex((n) => n.metadata.name === published.metadata.name);
  if (i < 0) {
    nodes.push(published);
    return;
  }
  const base = nodes[i]!;
  const annotations = { ...base.metadata.annotations, ...published.metadata.annotations };
  nodes[i] = { ...base, metadata: { ...base.metadata, annotations } };
}
