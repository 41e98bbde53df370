// Counts data callbacks (chunks) of every Bun socket created after install(), by wrapping the
// `data` handler once per listener/connector (one closure per socket kind, nothing per chunk).
// Only the heap benchmark installs it: it needs the exact number of chunks the proxy forwarded
// to turn "objects allocated" into "objects per chunk".

export const chunks = { count: 0, bytes: 0 };

function wrapHandlers<T extends { data?: (...args: any[]) => unknown }>(handlers: T | undefined): T | undefined {
  if (!handlers || typeof handlers.data !== "function") return handlers;
  const inner = handlers.data;
  // Fixed parameters, no rest/spread: the wrapper itself must allocate nothing per chunk (UDP
  // handlers take (socket, buf, port, address); TCP ones (socket, buf)).
  const counted = function (this: unknown, socket: unknown, buf: Uint8Array, a: unknown, b: unknown) {
    chunks.count++;
    chunks.bytes += buf.byteLength;
    return inner.call(this, socket, buf, a, b);
  };
  return { ...handlers, data: counted };
}

export function install(): void {
  const listen = Bun.listen;
  const connect = Bun.connect;
  const udp = Bun.udpSocket;
  (Bun as any).listen = (options: any) => listen({ ...options, socket: wrapHandlers(options.socket) });
  (Bun as any).connect = (options: any) => connect({ ...options, socket: wrapHandlers(options.socket) });
  (Bun as any).udpSocket = (options: any) => udp({ ...options, socket: wrapHandlers(options.socket) });
}
