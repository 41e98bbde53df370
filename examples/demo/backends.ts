// The small demo backends the bundled manifests point at, started by `edgemesh dev` when it
// serves examples/manifests, so the README's first command shows real traffic.

import type { Logger } from "../../src/log/index.ts";

export const DEMO_PORTS = { web1: 19081, web2: 19082, echo: 19007 } as const;

export interface DemoBackends {
  stop(): void;
}

export function startDemoBackends(log: Logger): DemoBackends {
  const stops: (() => void)[] = [];
  const attempt = (what: string, start: () => () => void) => {
    try {
      stops.push(start());
    } catch (err) {
      log.warn(`demo backend ${what} not started (port busy?)`, { error: err });
    }
  };
  for (const [name, host, port] of [
    ["web-1", "127.0.0.1", DEMO_PORTS.web1],
    ["web-2", "127.0.0.2", DEMO_PORTS.web2],
  ] as const) {
    attempt(name, () => {
      const server = Bun.serve({
        hostname: host,
        port,
        fetch: (req) => new Response(`hello from ${name} (${new URL(req.url).pathname})\n`),
      });
      return () => server.stop(true);
    });
  }
  attempt("tcp-echo", () => {
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: DEMO_PORTS.echo,
      socket: { data: (socket, data) => void socket.write(data) },
    });
    return () => listener.stop(true);
  });
  attempt("udp-echo", () => {
    let udp: { close(): void } | undefined;
    Bun.udpSocket({
      hostname: "127.0.0.1",
      port: DEMO_PORTS.echo,
      socket: {
        data(socket, data, port, address) {
          try {
            socket.send(data, port, address);
          } catch {}
        },
        error() {},
      },
    }).then((s) => (udp = s), (err) => log.warn("demo backend udp-echo not started", { error: err }));
    return () => udp?.close();
  });
  return { stop: () => stops.forEach((s) => s()) };
}
