// The agent's own device: a Linux bridge (EdgeMesh uses a dummy device; this kernel has no dummy
// module, and an empty bridge with a /32 behaves the same for us: a local address to bind DNS and
// the service listeners to). A device that already exists is adopted and never deleted: only what
// we created (the device, or the address on an adopted one) is removed at stop. Only the agent
// calls this in the root namespace; tests run it inside their own network namespaces (`prefix`).

import { HostError } from "./errors.ts";

export interface IpCommandOptions {
  /** Prepended to every command, e.g. ["ip", "netns", "exec", "ns1"] in tests. */
  readonly prefix?: readonly string[];
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function ip(options: IpCommandOptions, args: string[]): Promise<Result> {
  const proc = Bun.spawn([...(options.prefix ?? []), "ip", ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

async function must(options: IpCommandOptions, args: string[]): Promise<Result> {
  const res = await ip(options, args);
  if (res.code !== 0) throw new HostError(`ip ${args.join(" ")} failed (exit ${res.code}): ${res.stderr.trim()}`);
  return res;
}

/** What ensureBridge found and did: release it with releaseBridge. */
export interface BridgeState {
  /** We created the device: it is ours to delete. */
  readonly created: boolean;
  /** The device existed without the address and we added it: the address is ours to remove. */
  readonly addedAddress: boolean;
  /** The device's link kind as the kernel reports it ("bridge", EdgeMesh's "dummy", ...). */
  readonly kind: string;
}

/**
 * Create the device if missing, give it `address`/32 if it lacks it, bring it up. Idempotent. An
 * existing device (EdgeMesh leaves its dummy `edgemesh0` with the same IP on every stop, and a
 * node may have it from an earlier agent) is adopted as it is, whatever its kind.
 */
export async function ensureBridge(name: string, address: string, options: IpCommandOptions = {}): Promise<BridgeState> {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new HostError(`bridge device name "${name}" is not a valid interface name (1-15 chars)`);
  const exists = (await ip(options, ["link", "show", "dev", name])).code === 0;
  if (!exists) await must(options, ["link", "add", name, "type", "bridge"]);
  const info = await must(options, ["-j", "-d", "addr", "show", "dev", name]);
  const links = JSON.parse(info.stdout || "[]") as { addr_info?: { local?: string }[]; linkinfo?: { info_kind?: string } }[];
  const have = links.some((link) => (link.addr_info ?? []).some((a) => a.local === address));
  if (!have) await must(options, ["addr", "add", `${address}/32`, "dev", name]);
  await must(options, ["link", "set", "dev", name, "up"]);
  return { created: !exists, addedAddress: exists && !have, kind: links[0]?.linkinfo?.info_kind ?? "" };
}

/**
 * Undo ensureBridge: delete the device if we created it; on an adopted device remove only the
 * address we added, and leave the device (it is not ours). Never rejects for a device or address
 * that is already gone.
 */
export async function releaseBridge(name: string, address: string, state: BridgeState, options: IpCommandOptions = {}): Promise<void> {
  if (state.created) return removeBridge(name, options);
  if (!state.addedAddress) return;
  const res = await ip(options, ["addr", "del", `${address}/32`, "dev", name]);
  if (res.code !== 0 && !/Cannot find device|does not exist|Address not found|Cannot assign/i.test(res.stderr)) {
    throw new HostError(`ip addr del ${address}/32 dev ${name} failed (exit ${res.code}): ${res.stderr.trim()}`);
  }
}

/** Delete the device; a device that is already gone is fine. */
export async function removeBridge(name: string, options: IpCommandOptions = {}): Promise<void> {
  const res = await ip(options, ["link", "del", "dev", name]);
  if (res.code !== 0 && !/Cannot find device|does not exist/i.test(res.stderr)) {
    throw new HostError(`ip link del ${name} failed (exit ${res.code}): ${res.stderr.trim()}`);
  }
}
