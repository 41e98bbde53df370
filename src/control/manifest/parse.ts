// One manifest file -> the objects the store keeps. Pure (text in, objects or one error out) so
// the watcher's "keep the last good content of a broken file" rule is easy to see and test.
// YAML files may hold several documents; any document may be a List (kind "List" or
// "<Kind>List") whose items are expanded. JSON files hold one document.

import { loadAll, parseEvents, EVENT_ID, getScalarValue, type Event } from "js-yaml";
import { isKind, type Kind, type KubeObject } from "../objects.ts";

export interface ManifestError {
  /** Path of the file as given to the source (dir joined with the file name). */
  readonly file: string;
  /** 1-based line of the problem; 0 when unknown. */
  readonly line: number;
  readonly reason: string;
  /** "file:line: reason" (or "file: reason" when the line is unknown), for logs and /readyz. */
  readonly message: string;
}

function manifestError(file: string, line: number, reason: string): ManifestError {
  return { file, line, reason, message: line > 0 ? `${file}:${line}: ${reason}` : `${file}: ${reason}` };
}

export interface ParsedObject {
  readonly kind: Kind;
  readonly object: KubeObject;
}

export type ParseResult =
  | { readonly ok: true; readonly objects: readonly ParsedObject[]; /** objects of kinds we do not use */ readonly ignored: number }
  | { readonly ok: false; readonly error: ManifestError };

/**
 * YAML aliases are references: a few hundred bytes of nested aliases (a "billion laughs") load
 * as a small graph that expands to 10^9 values for anything that walks it as a tree (a warning
 * that prints a field, a JSON copy), and an alias inside its own anchor loads as a cycle.
 * Manifests need neither, so a document whose values, counted as a tree, exceed this budget
 * (or that contains a cycle) is refused like a syntax error. Honest files stay far below it:
 * without aliases a document cannot hold more values than it has bytes.
 */
export function expansionBudget(textLength: number): number {
  return 10_000 + 4 * textLength;
}

/** Kinds without a namespace; every other kept kind defaults to namespace "default". */
const CLUSTER_SCOPED = new Set<string>(["Node"]);
/** Lists inside lists are legal but rare; the bound keeps a hostile file from recursing deep. */
const MAX_LIST_DEPTH = 4;

class ObjectError extends Error {
  constructor(
    reason: string,
    readonly doc: number,
    readonly item: number,
  ) {
    super(reason);
  }
}

export function parseManifest(file: string, text: string): ParseResult {
  let docs: unknown[];
  try {
    docs = /\.json$/i.test(file) ? [parseJson(text)] : loadAll(text, { filename: file });
  } catch (err) {
    return { ok: false, error: syntaxError(file, text, err) };
  }
  const objects: ParsedObject[] = [];
  let ignored = 0;
  const budget = expansionBudget(text.length);
  try {
    for (let d = 0; d < docs.length; d++) {
      const doc = docs[d];
      if (doc === null || doc === undefined) continue; // empty document ("---" with nothing)
      const size = treeSize(doc, budget);
      if (size === CYCLE) throw new ObjectError("an alias refers to a node that contains it (a recursive structure); refused", d, -1);
      if (size > budget) throw new ObjectError(`aliases expand this document to more than ${budget} values (a YAML alias bomb?); refused`, d, -1);
      ignored += collect(doc, d, -1, 0, objects);
    }
  } catch (err) {
    if (!(err instanceof ObjectError)) throw err;
    return { ok: false, error: manifestError(file, locate(file, text, err.doc, err.item), err.message) };
  }
  return { ok: true, objects, ignored };
}

/** Adds the object (or a List's items) to `out`; returns how many were of ignored kinds. */
function collect(value: unknown, doc: number, item: number, depth: number, out: ParsedObject[]): number {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ObjectError(`expected an object, found ${Array.isArray(value) ? "a list" : JSON.stringify(value)}`, doc, item);
  }
  const obj = value as Record<string, any>;
  const kind = obj.kind;
  if (typeof kind !== "string" || kind === "") throw new ObjectError("object has no kind", doc, item);
  if (kind === "List" || (kind.endsWith("List") && Array.isArray(obj.items))) {
    if (!Array.isArray(obj.items)) throw new ObjectError(`${kind} has no items list`, doc, item);
    if (depth >= MAX_LIST_DEPTH) throw new ObjectError(`lists nested deeper than ${MAX_LIST_DEPTH}`, doc, item);
    let ignored = 0;
    // Item positions are reported for top-level lists only (nested ones point at the list).
    for (let i = 0; i < obj.items.length; i++) ignored += collect(obj.items[i], doc, depth === 0 ? i : item, depth + 1, out);
    return ignored;
  }
  const meta = obj.metadata;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    throw new ObjectError(`${kind} has no metadata`, doc, item);
  }
  if (typeof meta.name !== "string" || meta.name === "") throw new ObjectError(`${kind} has no metadata.name`, doc, item);
  if (meta.namespace !== undefined && (typeof meta.namespace !== "string" || meta.namespace === "")) {
    throw new ObjectError(`${kind} ${meta.name}: metadata.namespace must be a non-empty string`, doc, item);
  }
  if (!isKind(kind)) return 1;
  if (!CLUSTER_SCOPED.has(kind) && meta.namespace === undefined) meta.namespace = "default";
  out.push({ kind, object: obj as KubeObject });
  return 0;
}

const CYCLE = -1;

/**
 * Number of values in `root` counted as a tree (a shared node counts every time it is
 * reached), stopping as soon as it passes `limit`; CYCLE when a node contains itself. Each
 * distinct node is walked once (sizes are memoised), without recursion, so neither a bomb nor
 * deep nesting costs more than the graph js-yaml already built.
 */
function treeSize(root: unknown, limit: number): number {
  if (!isContainer(root)) return 1;
  const sizes = new Map<object, number>();
  const onPath = new Set<object>();
  type Frame = { node: object; children: unknown[]; next: number; size: number };
  const frame = (node: object): Frame => ({ node, children: Object.values(node), next: 0, size: 1 });
  const stack: Frame[] = [frame(root)];
  onPath.add(root);
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.next < f.children.length) {
      const child = f.children[f.next++];
      if (!isContainer(child)) f.size += 1;
      else if (onPath.has(child)) return CYCLE;
      else {
        const known = sizes.get(child);
        if (known === undefined) {
          onPath.add(child);
          stack.push(frame(child));
          continue;
        }
        f.size += known;
      }
      if (f.size > limit) return f.size;
      continue;
    }
    stack.pop();
    onPath.delete(f.node);
    sizes.set(f.node, f.size);
    const parent = stack[stack.length - 1];
    if (parent === undefined) return f.size;
    parent.size += f.size;
    if (parent.size > limit) return parent.size;
  }
  return 1;
}

/** Mappings and sequences; binary (!!binary) and timestamps are single values. */
function isContainer(v: unknown): v is object {
  return v !== null && typeof v === "object" && !ArrayBuffer.isView(v) && !(v instanceof Date);
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

/** A parse failure with the best line we can find: js-yaml's mark, or js-yaml re-reading JSON. */
function syntaxError(file: string, text: string, err: unknown): ManifestError {
  const e = err as { reason?: string; message?: string; mark?: { line?: number } };
  if (e && typeof e.mark?.line === "number") {
    return manifestError(file, e.mark.line + 1, e.reason ?? String(e.message));
  }
  const reason = e?.message ?? String(err);
  // JSON.parse in JSC does not say where it failed; YAML is nearly a superset of JSON, so
  // js-yaml usually fails at (or near) the same spot and tells us the line.
  try {
    loadAll(text, { filename: file, json: true });
  } catch (yamlErr) {
    const line = (yamlErr as { mark?: { line?: number } }).mark?.line;
    if (typeof line === "number") return manifestError(file, line + 1, reason);
  }
  return manifestError(file, 0, reason);
}

/**
 * The line where document `doc` (or item `item` of its top-level `items` list) starts, from
 * js-yaml's event stream. Only runs on the error path, so a second parse is fine.
 */
function locate(file: string, text: string, doc: number, item: number): number {
  let events: Event[];
  try {
    events = parseEvents(text, { filename: file });
  } catch {
    return 0;
  }
  let d = -1;
  let i = 0;
  while (i < events.length) {
    const ev = events[i]!;
    if (ev.type === EVENT_ID.DOCUMENT) {
      d++;
      if (d === doc) break;
    }
    i++;
  }
  const root = events[i + 1];
  if (d !== doc || root === undefined) return 0;
  const rootOffset = offsetOf(root);
  if (item < 0 || root.type !== EVENT_ID.MAPPING) return lineAt(text, rootOffset);
  // Walk the root mapping's direct children (key, value, key, value ...) to the "items" value.
  let j = i + 2;
  let isKey = true;
  while (j < events.length && events[j]!.type !== EVENT_ID.POP) {
    const ev = events[j]!;
    if (!isKey && ev.type === EVENT_ID.SEQUENCE && isItemsKey(text, events, j - 1)) {
      const child = nthChild(events, j, item);
      return lineAt(text, child === undefined ? offsetOf(ev) : offsetOf(child));
    }
    j = skipNode(events, j);
    isKey = !isKey;
  }
  return lineAt(text, rootOffset);
}

function isItemsKey(text: string, events: Event[], keyIndex: number): boolean {
  const key = events[keyIndex];
  return key !== undefined && key.type === EVENT_ID.SCALAR && getScalarValue(text, key) === "items";
}

/** Index just past the node starting at events[i]. */
function skipNode(events: Event[], i: number): number {
  const ev = events[i]!;
  if (ev.type !== EVENT_ID.MAPPING && ev.type !== EVENT_ID.SEQUENCE) return i + 1;
  let depth = 1;
  let j = i + 1;
  while (j < events.length && depth > 0) {
    const t = events[j]!.type;
    if (t === EVENT_ID.MAPPING || t === EVENT_ID.SEQUENCE) depth++;
    else if (t === EVENT_ID.POP) depth--;
    j++;
  }
  return j;
}

function nthChild(events: Event[], seqIndex: number, n: number): Event | undefined {
  let j = seqIndex + 1;
  for (let k = 0; j < events.length && events[j]!.type !== EVENT_ID.POP; k++) {
    if (k === n) return events[j];
    j = skipNode(events, j);
  }
  return undefined;
}

function offsetOf(ev: Event): number {
  if (ev.type === EVENT_ID.MAPPING || ev.type === EVENT_ID.SEQUENCE) return ev.start;
  if (ev.type === EVENT_ID.SCALAR) return ev.valueStart;
  if (ev.type === EVENT_ID.ALIAS) return ev.anchorStart;
  return 0;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}
