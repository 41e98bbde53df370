// @libp2p/tcp with a dialer that cannot crash the process.
//
// @libp2p/tcp 11's TCP._connect passes the dial's AbortSignal on to net.connect and, when the
// signal fires, removes its own 'error' listener from the socket. net's own abort handling then
// destroys the socket with an AbortError on the next tick, which nobody listens for any more:
// an uncaught exception that kills the agent (seen when a relay restarted with a dial pending).
// We replace _connect on each transport instance (one documented place) with a dialer that
// never hands the signal to net, destroys the socket itself on abort (no error emitted), and
// keeps an 'error' listener on the socket for its whole life. tcp-dial.test.ts fails if the
// library stops having _connect, so an upgrade cannot silently drop the fix.
import net from "node:net";
import { AbortError, TimeoutError, type AbortOptions, type Transport } from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";
import { tcp, type TCPOptions } from "@libp2p/tcp";
import { getNetConfig } from "@libp2p/utils";

type TcpFactory = ReturnType<typeof tcp>;
type TcpComponents = Parameters<TcpFactory>[0];

interface DialOptions extends AbortOptions {
  keepAlive?: boolean;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  onProgress?: (evt: Event) => void;
}

/** The private method we replace; checked at construction so a library change fails loudly. */
interface TcpInternals {
  _connect(ma: Multiaddr, options: DialOptions): Promise<net.Socket>;
}

/** Drop-in for tcp(): same transport, safe dialer. */
export function safeTcp(tcpInit: TCPOptions = {}): TcpFactory {
  const factory = tcp(tcpInit);
  return (components: TcpComponents) => {
    const transport = factory(components) as Transport & Partial<TcpInternals>;
    if (typeof transport._connect !== "function") {
      throw new Error("@libp2p/tcp no longer has TCP._connect: review src/tunnel/tcp-dial.ts (abort-crash fix)");
    }
    const socketOpts = tcpInit.dialOpts ?? {};
    transport._connect = (ma, options) => connectTcp(ma, options, socketOpts);
    return transport as ReturnType<TcpFactory>;
  };
}

/** Resolves with a connected socket or rejects (AbortError, TimeoutError, socket error). */
export function connectTcp(ma: Multiaddr, options: DialOptions, socketOpts: object = {}): Promise<net.Socket> {
  options.signal?.throwIfAborted();
  options.onProgress?.(new Event("tcp:open-connection"));
  const { host, port } = getNetConfig(ma) as { host: string; port: number };
  const socket = net.connect({
    ...socketOpts,
    host,
    port,
    keepAlive: options.keepAlive ?? true,
    noDelay: options.noDelay ?? true,
    allowHalfOpen: options.allowHalfOpen ?? false,
  } as net.NetConnectOpts);
  // Stays for the socket's life: an error after the dial gave up on the socket, or after
  // libp2p's connection wrapper detached, must not become an uncaught exception. While the
  // connection is up, libp2p's own listener sees (and handles) every error as well.
  socket.on("error", ignore);
  let settled = false;
  return new Promise<net.Socket>((resolve, reject) => {
    const signal = options.signal;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      socket.off("error", onError);
      socket.off("timeout", onTimeout);
      socket.off("connect", onConnect);
      signal?.removeEventListener("abort", onAbort);
      if (err === undefined) return resolve(socket);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error) => {
      err.message = `connection error ${host}:${port}: ${err.message}`;
      done(err);
    };
    const onTimeout = () => done(new TimeoutError(`TCP connect to ${host}:${port} timed out`));
    const onConnect = () => done();
    const onAbort = () => done(new AbortError());
    socket.on("error", onError);
    socket.on("timeout", onTimeout);
    socket.on("connect", onConnect);
    signal?.addEventListener("abort", onAbort);
  });
}

function ignore(): void {}
