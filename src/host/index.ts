// Public surface of host set-up for agent mode: root check, descriptor limit, bridge device.
export { requireRoot } from "./root.ts";
export { raiseNofileLimit, type NofileLimits } from "./nofile.ts";
export { ensureBridge, removeBridge, type IpCommandOptions } from "./bridge.ts";
export { HostError } from "./errors.ts";
