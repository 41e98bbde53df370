// Renders deploy/ with the real `kubectl kustomize`, in a copy (the PSK file the base's
// secretGenerator needs is written there, never into the repository), and gives the objects back
// parsed. Shared by the manifest checks and the RBAC proof.

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadAll } from "js-yaml";

export const REPO = resolve(import.meta.dir, "../..");
/** What a test PSK file holds (any bytes work; this is openssl rand -base64 32's shape). */
export const TEST_PSK = "c2VjcmV0LWZvci10ZXN0cy1vbmx5LW5vdC1mb3ItdXNlIQ==\n";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
}

export interface DeployCopy {
  /** The copied deploy/ folder. */
  readonly dir: string;
  /** `kubectl kustomize` of a folder relative to the copy (e.g. "overlays/edge"). */
  render(path: string): Promise<K8sObject[]>;
  /** Writes a kustomization of its own under the copy (e.g. composing an overlay and a component). */
  write(path: string, text: string): void;
  remove(): void;
}

export function copyDeploy(options: { psk?: string | false } = {}): DeployCopy {
  const root = mkdtempSync(join(tmpdir(), "edgemesh-deploy-"));
  const dir = join(root, "deploy");
  cpSync(join(REPO, "deploy"), dir, { recursive: true, filter: (src) => !src.endsWith("/base/psk") });
  if (options.psk !== false) writeFileSync(join(dir, "base/psk"), options.psk ?? TEST_PSK);
  return {
    dir,
    render: (path) => kustomize(join(dir, path)),
    write(path, text) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), text);
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

export class KustomizeError extends Error {
  override name = "KustomizeError";
}

export async function kustomize(dir: string): Promise<K8sObject[]> {
  const proc = Bun.spawn(["kubectl", "kustomize", dir], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new KustomizeError(`kubectl kustomize ${dir} failed (exit ${code}): ${err.trim()}`);
  return (loadAll(out) as (K8sObject | null)[]).filter((o): o is K8sObject => o !== null);
}

export function find(objs: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (hits.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${hits.length}`);
  return hits[0]!;
}

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/** The scheduler's toleration check (k8s.io/api core/v1 Toleration.ToleratesTaint). */
export function tolerates(tolerations: readonly any[] | undefined, taint: Taint): boolean {
  return (tolerations ?? []).some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.key && t.key !== taint.key) return false;
    if (!t.key && t.operator !== "Exists") return false;
    if (t.operator === "Exists") return true;
    return (t.value ?? "") === (taint.value ?? "");
  });
}

/** requiredDuringScheduling node affinity: terms ORed, expressions ANDed (no affinity = any node). */
export function nodeAffinityAdmits(podSpec: any, labels: Record<string, string>): boolean {
  const terms = podSpec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms as any[] | undefined;
  const selector = (podSpec.nodeSelector ?? {}) as Record<string, string>;
  if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  if (!terms || terms.length === 0) return true;
  return terms.some((term) =>
    (term.matchExpressions ?? []).every((e: any) => {
      const has = e.key in labels;
      switch (e.operator) {
        case "Exists": return has;
        case "DoesNotExist": return !has;
        case "In": return has && e.values.includes(labels[e.key]);
        case "NotIn": return !has || !e.values.includes(labels[e.key]);
        default: throw new Error(`node affinity operator ${e.operator} not modelled`);
      }
    }),
  );
}
