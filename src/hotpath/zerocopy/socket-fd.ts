// Bun 1.4.4 sockets carry their fd as `socket.fd` (present on the prototype, absent from
// bun-types). Read it in one place so a runtime without it fails loudly here, not in a syscall.

/** The OS fd of a connected Bun TCP socket, or -1 when the runtime does not expose it. */
export function socketFd(s: object): number {
  const fd = (s as { fd?: unknown }).fd;
  return typeof fd === "number" && fd >= 0 ? fd : -1;
}
