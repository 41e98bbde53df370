// Namespace names for one test run: "emtb-<pid>-<random>-<label>". The pid makes leftovers of dead
// runs recognisable (sweepStale removes them at the start of the next run) without ever touching
// the namespaces of a run that is still going. Interface names live inside these namespaces, so
// they can be short fixed names (eth0, cni0, br0) and never clash with the host's.

import { existsSync, readdirSync, rmSync } from "node:fs";
import { run } from "./sh.ts";

export const PREFIX = "emtb-";

export function newRunId(): string {
  return `${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
}

export function nsName(runId: string, label: string): string {
  return `${PREFIX}${runId}-${label}`;
}

export async function listNamespaces(): Promise<string[]> {
  const res = await run(["ip", "netns", "list"]);
  return res.stdout
    .split("\n")
    .map((l) => l.trim().split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

/** Kill what runs in a namespace of ours, delete it and its /etc/netns folder. Never throws. */
export async function deleteNamespace(ns: string): Promise<void> {
  if (!ns.startsWith(PREFIX)) throw new Error(`refusing to delete namespace ${ns}: not ours`);
  const pids = await run(["ip", "netns", "pids", ns]);
  for (const pid of pids.stdout.split("\n").map(Number).filter((p) => p > 1 && p !== process.pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await run(["ip", "netns", "del", ns]);
  const etc = `/etc/netns/${ns}`;
  if (existsSync(etc)) rmSync(etc, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove namespaces left behind by test runs whose process is gone. Returns their names. */
export async function sweepStale(): Promise<string[]> {
  const stale = (await listNamespaces()).filter((ns) => {
    const m = ns.match(/^emtb-(\d+)-/);
    return m !== null && !alive(Number(m[1]));
  });
  for (const ns of stale) await deleteNamespace(ns);
  // A crash between deleting a namespace and its folder leaves the folder alone.
  if (existsSync("/etc/netns")) {
    for (const dir of readdirSync("/etc/netns")) {
      const m = dir.match(/^emtb-(\d+)-/);
      if (m && !alive(Number(m[1]))) rmSync(`/etc/netns/${dir}`, { recursive: true, force: true });
    }
  }
  return stale;
}
