// Public surface of host set-up for agent mode: root check, descriptor limit, bridge device,
// the Edge CNI's TUN device and its routes, capabilities, and who holds a port.
export { requireRoot } from "./root.ts";
export { raiseNofileLimit, type NofileLimits } from "./nofile.ts";
export { ensureBridge, releaseBridge, removeBridge, type BridgeState, type IpCommandOptions } from "./bridge.ts";
export { HostError } from "./errors.ts";
export { openTun, TUN_DEVICE_NAME, VNET_HDR_BYTES, type TunDevice, type TunIo, type TunOptions } from "./tun.ts";
export { createRouteSyncer, planRoutes, routeCommands, ROUTE_PROTO, type RouteEntry, type RoutePlan, type RouteSyncer, type RouteSyncerOptions } from "./routes.ts";
export { CAP, hasCap, missingCapabilities, readEffectiveCaps, requireCapabilities, unprivilegedPortStart, type CapName, type CapNeed } from "./caps.ts";
export { conflicting, findPortHolders, parseProcNet, type PortHolder, type ProcReader, type Protocol, type SocketEntry } from "./port-owner.ts";
