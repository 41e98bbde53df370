import { HostError } from "./errors.ts";

/** Fail early with a message naming the mode, instead of an EPERM from iptables later. */
export function requireRoot(what = "this command", euid: number | undefined = process.geteuid?.()): void {
  if (euid === 0) return;
  throw new HostError(
    `${what} needs root (it creates a network device and iptables rules); running as uid ${euid ?? "unknown"}. ` +
      `Run it as root, or use \`edgemesh dev\` for a single-node setup without root.`,
  );
}
