// Public surface of host set-up for agent mode: root check, descriptor limit, bridge device,
// and the Edge CNI's TUN device and its routes.
export { requireRoot } from "./root.ts";
export { raiseNofileLimit, type NofileLimits } from "./nofile.ts";
export { ensureBridge, releaseBridge, removeBridge, type BridgeState, type IpCommandOptions } from "./bridge.ts";
export { HostError } from "./errors.ts";
export { openTun, TUN_DEVICE_NAME, VNET_HDR_BYTES, type TunDevice, type TunIo, type TunOptions } from "./tun.ts";
export { createRouteSyncer, planRoutes, routeCommands, ROUTE_PROTO, type RouteEntry, type RoutePlan, type RouteSyncer, type RouteSyncerOptions } from "./routes.ts";
