// Public surface of the Edge CNI data plane: the packet pump between the TUN device and one CNI
// stream per peer, its device/tunnel seams, and the pure frame and offload helpers (for tests).
export { createCniPump, type CniPump, type CniPumpOptions } from "./pump.ts";
export type { CniDevice, CniTunnel } from "./types.ts";
export { frameLength, ipPacketLength, ipv4Destination } from "./frames.ts";
export { framesToPlain, plainBound, sumWords, fold, GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET_F_NEEDS_CSUM } from "./offload.ts";
export { MAX_FRAME_BYTES, VNET_HDR_BYTES } from "./constants.ts";
