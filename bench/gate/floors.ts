// floors.json: what CI demands of each benchmark. One entry per result name:
//   "tcp.bulk.proxy": { "min": 0.40, "on": "ratio", "target": 0.75, "comment": "measured ..." }
// exactly one of "min"/"max"; "on" defaults to "ratio" for "min" and "value" for "max".
// A malformed file stops the gate with a message naming the key: a typo must not turn a floor off.

import type { Floor, Floors } from "./types.ts";

export class FloorsError extends Error {
  override name = "FloorsError";
}

const ALLOWED = new Set(["min", "max", "on", "target", "comment"]);

export function parseFloors(text: string): Floors {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FloorsError(`floors: not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(doc) || !isRecord(doc.floors)) throw new FloorsError(`floors: expected an object with a "floors" object`);
  const out = new Map<string, Floor>();
  for (const [name, raw] of Object.entries(doc.floors)) out.set(name, parseEntry(name, raw));
  return out;
}

function parseEntry(name: string, raw: unknown): Floor {
  const where = `floors.${name}`;
  if (!isRecord(raw)) throw new FloorsError(`${where}: expected an object, got ${JSON.stringify(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!ALLOWED.has(key)) throw new FloorsError(`${where}.${key}: unknown key`);
  }
  const hasMin = raw.min !== undefined;
  const hasMax = raw.max !== undefined;
  if (hasMin === hasMax) throw new FloorsError(`${where}: needs exactly one of "min" or "max"`);
  const direction = hasMin ? "min" : "max";
  const limit = number(`${where}.${direction}`, raw[direction]);
  const on = raw.on ?? (hasMin ? "ratio" : "value");
  if (on !== "ratio" && on !== "value") throw new FloorsError(`${where}.on: expected "ratio" or "value", got ${JSON.stringify(on)}`);
  if (typeof raw.comment !== "string" || raw.comment.trim() === "") {
    throw new FloorsError(`${where}.comment: say what was measured when (a non-empty string)`);
  }
  const target = raw.target === undefined ? undefined : number(`${where}.target`, raw.target);
  return { on, direction, limit, target, comment: raw.comment };
}

function number(where: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new FloorsError(`${where}: expected a finite number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
