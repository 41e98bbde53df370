// A proxy that adopts at once: accept, dial the target, then hand both fds to the zero-copy
// engine and close the Bun sockets, so every byte moves through splice(2) in the engine's worker
// (what an "adopt at once" hook would do). Used by the engine's integration test and, in its
// own process, by the zero-copy benchmark (bench/macro/zerocopy-proxy.ts).
import type { Socket } from "bun";
import { socketFd, type ZeroCopyDoneInfo, type ZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";

interface ProxySide {
  peer: Socket<ProxySide> | null;
  adopted: boolean;
}
export interface ZcProxy {
  listener: { readonly port: number; stop(closeActiveConnections?: boolean): void };
  done: ZeroCopyDoneInfo[];
  refused: number;
}

export function recordDone(info: ZeroCopyDoneInfo, p: ZcProxy): void {
  p.done.push(info);
}

/** Accept, dial the target, then hand both fds to the engine and close the Bun sockets. */
export function startZcProxy(engine: ZeroCopyEngine, targetPort: number): ZcProxy {
  const proxy: ZcProxy = { listener: null as never, done: [], refused: 0 };
  proxy.listener = Bun.listen<ProxySide>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(client) {
        client.data = { peer: null, adopted: false };
        client.pause();
        void Bun.connect<ProxySide>({
          hostname: "127.0.0.1",
          port: targetPort,
          allowHalfOpen: true,
          data: { peer: client, adopted: false },
          socket: {
            open(up) {
              client.data.peer = up;
              if (engine.adopt(socketFd(client), socketFd(up), recordDone, proxy)) {
                client.data.adopted = up.data.adopted = true;
                client.close();
                up.close();
              } else {
                proxy.refused++;
                client.terminate();
                up.terminate();
              }
            },
            connectError() {
              client.terminate();
            },
            data() {},
            close() {},
            error() {},
          },
        });
      },
      data() {},
      close(client) {
        if (!client.data.adopted) client.data.peer?.terminate();
      },
      error() {},
    },
  });
  return proxy;
}
