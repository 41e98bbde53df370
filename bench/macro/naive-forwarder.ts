// A deliberately plain Bun forwarder: the "first naive Bun.listen forwarder" the issue measured
// (0.58x bulk, 0.58x request rate, 0.32x UDP). It is a reference for the macro benchmarks (what
// plain Bun gives without our hot path's care) and lets the harness run before src/hotpath exists.
// Not used by the product.

import type { Socket, udp } from "bun";

export interface Backend {
  readonly name: string;
  readonly protocol: "TCP" | "UDP";
  readonly host: string;
  readonly port: number;
}

interface Pair {
  peer: Socket<Pair> | null;
  pending: Uint8Array | null;
  closed: boolean;
}

function forward(from: Socket<Pair>, to: Socket<Pair>, data: Uint8Array): void {
  const state = to.data;
  if (state.pending) {
    state.pending = concat(state.pending, data);
    return;
  }
  const n = to.write(data);
  if (n < data.byteLength) {
    state.pending = data.slice(n);
    from.pause();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function flush(sock: Socket<Pair>): void {
  const state = sock.data;
  if (!state.pending) return;
  const n = sock.write(state.pending);
  if (n < state.pending.byteLength) {
    state.pending = state.pending.slice(n);
    return;
  }
  state.pending = null;
  state.peer?.resume();
}

export async function startNaive(backends: readonly Backend[]): Promise<Map<string, { port: number; protocol: string }>> {
  const out = new Map<string, { port: number; protocol: string }>();
  for (const b of backends) {
    if (b.protocol === "TCP") {
      const server = Bun.listen<Pair>({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          open(client) {
            client.data = { peer: null, pending: null, closed: false };
            client.pause();
            Bun.connect<Pair>({
              hostname: b.host,
              port: b.port,
              data: { peer: client, pending: null, closed: false },
              socket: {
                open(up) {
                  client.data.peer = up;
                  if (client.data.closed) up.end();
                  else client.resume();
                },
                data(up, buf) {
                  forward(up, client, buf);
                },
                drain: flush,
                close(up) {
                  up.data.closed = true;
                  client.end();
                },
                error() {},
              },
            }).catch(() => client.end());
          },
          data(client, buf) {
            if (client.data.peer) forward(client, client.data.peer, buf);
          },
          drain: flush,
          close(client) {
            client.data.closed = true;
            client.data.peer?.end();
          },
          error() {},
        },
      });
      out.set(b.name, { port: server.port, protocol: "TCP" });
    } else {
      const flows = new Map<string, udp.Socket<"buffer">>();
      const front = await Bun.udpSocket({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          async data(sock, buf, port, address) {
            const key = `${address}:${port}`;
            let up = flows.get(key);
            if (!up) {
              up = await Bun.udpSocket({
                socket: {
                  data(_u, reply) {
                    try {
                      sock.send(reply, port, address);
                    } catch {}
                  },
                  error() {},
                },
              });
              flows.set(key, up);
            }
            try {
              up.send(buf, b.port, b.host);
            } catch {}
          },
          error() {},
        },
      });
      out.set(b.name, { port: front.port, protocol: "UDP" });
    }
  }
  return out;
}
