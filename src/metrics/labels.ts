// Label sets rendered once, at registration: a series is found by its rendered text, and the hot
// path never touches labels.

export type Labels = Readonly<Record<string, string>>;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** `{a="x",b="y"}` with keys sorted and values escaped; "" for no labels. */
export function renderLabels(labels?: Labels): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  for (const k of keys) {
    if (!LABEL_NAME.test(k) || k.startsWith("__") || k === "le") throw new Error(`invalid metric label name ${JSON.stringify(k)}`);
  }
  return "{" + keys.map((k) => `${k}="${escapeLabelValue(labels[k]!)}"`).join(",") + "}";
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** A rendered label set with one more label appended (the histogram's `le`). */
export function withLabel(rendered: string, name: string, value: string): string {
  const pair = `${name}="${escapeLabelValue(value)}"`;
  return rendered === "" ? `{${pair}}` : `${rendered.slice(0, -1)},${pair}}`;
}

/**
 * Keeps the number of distinct label values of one kind (service ports, peer nodes) bounded:
 * the first `max` keys get their own series, later ones share the overflow series until a slot
 * is released. Cardinality stays bounded however many services or peers come and go.
 */
export class LabelBudget {
  readonly #held = new Set<string>();
  constructor(readonly max: number) {}

  /** True when `key` has (or now gets) its own series; false: use the overflow series. */
  take(key: string): boolean {
    if (this.#held.has(key)) return true;
    if (this.#held.size >= this.max) return false;
    this.#held.add(key);
    return true;
  }

  has(key: string): boolean {
    return this.#held.has(key);
  }

  release(key: string): void {
    this.#held.delete(key);
  }

  get size(): number {
    return this.#held.size;
  }
}

/** The label value series past a LabelBudget share. */
export const OVERFLOW_LABEL = "_overflow";
