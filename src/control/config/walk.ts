// Merges a parsed file onto the defaults, guided by the schema, collecting every problem.
// Decoding follows EdgeMesh's (sigs.k8s.io/yaml -> encoding/json) where it is lenient in
// harmless ways, and is strict where EdgeMesh silently ignores mistakes:
// - a null/empty value keeps the default (Go leaves the field untouched);
// - keys match case-insensitively when no exact match exists (Go's encoding/json does this,
//   and EdgeMesh's own docs spell "TunnelPeerBaseStreamIn");
// - lists replace the default list, mappings merge key by key;
// - YAML 1.1 booleans (yes/no/on/off/y/n) count as booleans, as in go-yaml v2;
// - unknown keys are errors (EdgeMesh drops them silently, hiding typos).

import { editDistance } from "./checks.ts";
import { showValue } from "./errors.ts";
import type { ConfigProblem } from "./errors.ts";
import type { SchemaNode } from "./schema.ts";

const YAML11_TRUE = new Set(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"]);
const YAML11_FALSE = new Set(["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"]);

export interface WalkContext {
  readonly problems: ConfigProblem[];
  /** Told about keys that were accepted but changed meaning (ignored, re-cased). */
  readonly notice: (message: string) => void;
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Returns the merged value; `def` may be mutated in place (it is a fresh defaults tree). */
export function walk(raw: unknown, node: SchemaNode, def: unknown, path: string, ctx: WalkContext): unknown {
  if (raw === undefined || raw === null) return def;
  const bad = (expected: string) => {
    ctx.problems.push({ path, message: `${expected}, got ${showValue(raw)}` });
    return def;
  };
  switch (node.kind) {
    case "object":
      return isMapping(raw) ? walkObject(raw, node, def as Record<string, unknown>, path, ctx) : bad("expected a mapping");
    case "list": {
      if (!Array.isArray(raw)) return bad("expected a list");
      return raw.map((item, i) => {
        const at = `${path}[${i}]`;
        if (item !== null && item !== undefined) return walk(item, node.item, node.newItem?.(), at, ctx);
        ctx.problems.push({ path: at, message: "expected a value, got an empty list item" });
        return node.newItem?.() ?? "";
      });
    }
    case "string": {
      if (typeof raw !== "string") return bad("expected a string");
      const why = node.check?.(raw);
      return why ? bad(why) : raw;
    }
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (typeof raw === "string" && YAML11_TRUE.has(raw)) return true;
      if (typeof raw === "string" && YAML11_FALSE.has(raw)) return false;
      return bad("expected true or false");
    case "int": {
      const ok = typeof raw === "number" && Number.isInteger(raw) && raw >= node.min && raw <= node.max;
      if (ok) return raw;
      // Unbounded fields (Go int32) state only the lower bound unless the upper one was hit.
      const huge = typeof raw === "number" && raw > node.max;
      const range = node.max === 2 ** 31 - 1 && !huge ? `>= ${node.min}` : `in ${node.min}..${node.max}`;
      return bad(node.what ? `expected ${node.what} ${range.replace(/^in /, "")}` : `expected an integer ${range}`);
    }
    case "number": {
      if (typeof raw !== "number" || !Number.isFinite(raw)) return bad(node.check(Number.NaN) ?? "expected a number");
      const why = node.check(raw);
      return why ? bad(why) : raw;
    }
    case "enum":
      if (typeof raw === "string" && node.values.includes(raw)) return raw;
      return bad(`expected one of ${node.values.map((v) => JSON.stringify(v)).join(", ")}`);
  }
}

function walkObject(
  raw: Record<string, unknown>,
  node: Extract<SchemaNode, { kind: "object" }>,
  out: Record<string, unknown>,
  path: string,
  ctx: WalkContext,
): Record<string, unknown> {
  const seen = new Map<string, string>(); // canonical key -> key as written
  for (const key of Object.keys(raw)) {
    const canonical = resolveKey(key, node);
    const at = join(path, key);
    if (canonical === undefined) {
      ctx.problems.push({ path: at, message: `unknown key${suggest(key, node)}` });
      continue;
    }
    const earlier = seen.get(canonical);
    if (earlier !== undefined) {
      ctx.problems.push({ path: at, message: `given twice (also as "${earlier}")` });
      continue;
    }
    seen.set(canonical, key);
    if (node.internal?.includes(canonical)) {
      ctx.notice(`${at}: set by the agent at start (as in EdgeMesh); the file's value is ignored`);
      continue;
    }
    if (canonical !== key) ctx.notice(`${at}: read as "${canonical}" (keys match case-insensitively, as in EdgeMesh)`);
    out[canonical] = walk(raw[key], node.fields[canonical]!, out[canonical], join(path, canonical), ctx);
  }
  return out;
}

function resolveKey(key: string, node: Extract<SchemaNode, { kind: "object" }>): string | undefined {
  if (Object.hasOwn(node.fields, key) || node.internal?.includes(key)) return key;
  const lower = key.toLowerCase();
  const all = [...Object.keys(node.fields), ...(node.internal ?? [])];
  return all.find((k) => k.toLowerCase() === lower);
}

function suggest(key: string, node: Extract<SchemaNode, { kind: "object" }>): string {
  let best: string | undefined;
  let bestDistance = 3; // more than two edits away is not a typo
  for (const k of Object.keys(node.fields)) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best ? ` (did you mean "${best}"?)` : "";
}
