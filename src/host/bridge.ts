// The agent's own device: a Linux bridge (EdgeMesh uses a dummy device; this kernel has no dummy
// module, and an empty bridge with a /32 behaves the same for us: a local address to bind DNS and
// the service listeners to). Only the agent calls this in the root namespace; tests run it inside
// their own network namespaces through `prefix`.

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

/** Create the device if missing, give it `address`/32 if it lacks it, bring it up. Idempotent. */
export async function ensureBridge(name: string, address: string, options: IpCommandOptions = {}): Promise<{ created: boolean }> {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new HostError(`bridge device name "${name}" is not a valid interface name (1-15 chars)`);
  const exists = (await ip(options, ["link", "show", "dev", name])).code === 0;
  if (!exists) await must(options, ["link", "add", name, "type", "bridge"]);
  const addrs = await must(options, ["-j", "addr", "show", "dev", name]);
  const have = (JSON.parse(addrs.stdout || "[]") as { addr_info?: { local?: string }[] }[]).some((link) =>
    (link.addr_info ?? []).some((a) => a.local === address),
  );
  if (!have) await must(options, ["addr", "add", `${address}/32`, "dev", name]);
  await must(options, ["link", "set", "dev", name, "up"]);
  return { created: !exists };
}

/** Delete the device; a device that is already gone is fine. */
export async function removeBridge(name: string, options: IpCommandOptions = {}): Promise<void> {
  const res = await ip(options, ["link", "del", "dev", name]);
  if (res.code !== 0 && !/Cannot find device|does not exist/i.test(res.stderr)) {
    throw new HostError(`ip link del ${name} failed (exit ${res.code}): ${res.stderr.trim()}`);
  }
}
