// The readable table printed by the gate and kept beside latest.json:
//   name | value | reference | ratio | range | floor | target | status
// followed by one loud line per NOT MEASURED / ERROR / MISSING row and the notes.

import type { Verdict } from "./evaluate.ts";
import type { Row } from "./types.ts";

const HEADER = ["benchmark", "value", "reference", "ratio", "range", "floor", "target", "status"];

export function renderTable(verdict: Verdict): string {
  const lines = verdict.rows.map(cells);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (l: string[]) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  const out = [fmt(HEADER), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(fmt)];
  const loud = verdict.rows.flatMap(loudLine);
  if (loud.length) out.push("", ...loud);
  const notes = verdict.rows.filter((r) => r.result?.note).map((r) => `note ${r.name}: ${r.result!.note}`);
  if (notes.length) out.push("", ...notes);
  const c = verdict.counts;
  out.push(
    "",
    `${verdict.ok ? "GATE PASS" : "GATE FAIL"}: ${c.PASS} pass, ${c.FAIL} fail, ${c.ERROR} error, ${c.MISSING} missing, ` +
      `${c["NOT MEASURED"]} not measured, ${c.INFO} info`,
  );
  return out.join("\n");
}

function cells(row: Row): string[] {
  const r = row.result;
  const unit = r?.unit ?? "";
  const value = r && r.value !== null ? `${num(r.value)} ${unit}` : "-";
  const reference = r?.reference ? `${num(r.reference.value)} ${unit} (${r.reference.name})` : "-";
  const ratio = typeof r?.ratio === "number" ? `${num(r.ratio)}x` : "-";
  const suffix = row.floor?.on === "ratio" ? "x" : ` ${unit}`;
  const range = r?.runs && r.runs.length > 1 ? `${num(Math.min(...r.runs))}..${num(Math.max(...r.runs))}` : "-";
  const floor = row.floor ? `${row.floor.direction === "min" ? ">=" : "<="} ${num(row.floor.limit)}${suffix}` : "-";
  const target =
    row.floor?.target === undefined
      ? "-"
      : `${row.floor.direction === "min" ? ">=" : "<="} ${num(row.floor.target)}${suffix} ${row.targetMet === undefined ? "?" : row.targetMet ? "met" : "NOT met"}`;
  return [row.name, value, reference, ratio, range, floor, target, row.status];
}

function loudLine(row: Row): string[] {
  switch (row.status) {
    case "NOT MEASURED":
      return [`!!! NOT MEASURED: ${row.name}: ${row.result?.notMeasured}`];
    case "ERROR":
      return [`!!! ERROR: ${row.name}: ${row.result?.error ?? `no ${row.floor?.on} in the result`}`];
    case "MISSING":
      return [`!!! MISSING: ${row.name}: floors.json has a floor but no benchmark reported it`];
    case "FAIL":
      return [`!!! FAIL: ${row.name}: ${num(row.gated!)} is not ${row.floor!.direction === "min" ? ">=" : "<="} ${num(row.floor!.limit)}`];
    default:
      return [];
  }
}

/** Three significant digits, no exponent for the sizes we print. */
export function num(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toString();
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  if (a === 0) return "0";
  return n.toPrecision(3);
}
