// The OS boundary of this module: running iptables and iptables-restore. Everything else takes an
// IptablesExec, so the sync logic is tested with a fake and the real one in a network namespace
// (`prefix: ["ip", "netns", "exec", ns]`).

import { IptablesError } from "./errors.ts";

export type IptablesBackend = "nft" | "legacy";

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface IptablesExec {
  readonly backend: IptablesBackend;
  /** `iptables-restore --noflush` with this text on stdin; rejects with IptablesError. */
  restore(text: string): Promise<void>;
  /** `iptables -w 5 ARGS`; never rejects for a non-zero exit (the caller reads `code`). */
  run(args: readonly string[]): Promise<ExecResult>;
  /** `iptables-save` (every table); rejects with IptablesError. Absent in fakes that have no use for it. */
  dump?(): Promise<string>;
  /** `conntrack ARGS`, when the conntrack tool is installed (UDP flow cleanup); else absent. */
  conntrack?(args: readonly string[]): Promise<ExecResult>;
}

export interface ExecOptions {
  /** Prepended to every command, e.g. ["ip", "netns", "exec", "ns1"]. */
  readonly prefix?: readonly string[];
  /** Seconds to wait for the xtables lock (legacy backend; nft ignores it). */
  readonly lockWaitSeconds?: number;
}

/** Spawn a command; resolves with its exit code and output (stdin optional). */
export async function spawnCommand(argv: readonly string[], stdin?: string): Promise<ExecResult> {
  let proc;
  try {
    proc = Bun.spawn([...argv], { stdin: stdin === undefined ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    return { code: 127, stdout: "", stderr: `cannot run ${argv[0]}: ${(err as Error).message}` };
  }
  if (stdin !== undefined && proc.stdin) {
    proc.stdin.write(stdin);
    await proc.stdin.end();
  }
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** The binaries of one backend; distros without the -nft/-legacy names get the plain ones. */
export function backendBinaries(backend: IptablesBackend): { iptables: string; restore: string; save: string } {
  const pick = (name: string, fallback: string) => (Bun.which(name) ? name : fallback);
  return {
    iptables: pick(`iptables-${backend}`, "iptables"),
    restore: pick(`iptables-${backend}-restore`, "iptables-restore"),
    save: pick(`iptables-${backend}-save`, "iptables-save"),
  };
}

export function createIptablesExec(backend: IptablesBackend, options: ExecOptions = {}): IptablesExec {
  const prefix = options.prefix ?? [];
  const wait = String(options.lockWaitSeconds ?? 5);
  const bins = backendBinaries(backend);
  return {
    backend,
    async restore(text) {
      // --noflush is not optional: without it the restore would flush the whole nat table.
      const argv = [...prefix, bins.restore, "-w", wait, "--noflush"];
      const res = await spawnCommand(argv, text);
      if (res.code !== 0) throw new IptablesError(`${bins.restore} --noflush`, res.code, res.stderr);
    },
    run(args) {
      return spawnCommand([...prefix, bins.iptables, "-w", wait, ...args]);
    },
    async dump() {
      const res = await spawnCommand([...prefix, bins.save]);
      if (res.code !== 0) throw new IptablesError(bins.save, res.code, res.stderr);
      return res.stdout;
    },
    ...(Bun.which("conntrack") ? { conntrack: (args: readonly string[]) => spawnCommand([...prefix, "conntrack", ...args]) } : {}),
  };
}
