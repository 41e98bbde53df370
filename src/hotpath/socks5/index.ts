// Public surface of the SOCKS5 listener: the server, its pick (decide) and the wire format.
export { createSocks5Server, HANDSHAKE_TIMEOUT_MS, type Socks5Options, type Socks5Server } from "./server.ts";
export { decide, nodeDirectory, replyForDialError, EMPTY_DIRECTORY, type NodeDirectory, type SocksPlan } from "./decide.ts";
export * from "./protocol.ts";
export { createHostAddresses, HOST_ADDRESSES_REFRESH_MS, type HostAddresses, type HostAddressOptions } from "./host-addresses.ts";
