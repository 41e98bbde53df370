// A test app for pods: one process serving HTTP (with a WebSocket echo at /ws), HTTPS, TCP echo
// and UDP echo on one address, every answer naming the app so tests can tell endpoints apart.
// Usage: bun server.ts --name NAME --ip IP [--http P] [--https P --cert F --key F] [--tcp P] [--udp P]
// Prints "ready" once every listener is up.

import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";

const { values: a } = parseArgs({
  options: {
    name: { type: "string" },
    ip: { type: "string", default: "0.0.0.0" },
    http: { type: "string" },
    https: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    tcp: { type: "string" },
    udp: { type: "string" },
  },
});
const name = a.name ?? "app";
const host = a.ip!;

const fetchHandler = (req: Request, server: import("bun").Server<undefined>): Response | undefined => {
  const url = new URL(req.url);
  if (url.pathname === "/ws" && server.upgrade(req)) return undefined;
  if (url.pathname === "/ip") return new Response(server.requestIP(req)?.address ?? "");
  if (url.pathname === "/headers") return Response.json(Object.fromEntries(req.headers));
  if (url.pathname === "/size") return new Response("x".repeat(Number(url.searchParams.get("n") ?? 0)));
  return new Response(name, { headers: { "x-app": name } });
};
const websocket = {
  message(ws: import("bun").ServerWebSocket<undefined>, msg: string | Buffer) {
    ws.send(msg);
  },
};

if (a.http) Bun.serve({ hostname: host, port: Number(a.http), fetch: fetchHandler, websocket });
if (a.https) {
  Bun.serve({
    hostname: host,
    port: Number(a.https),
    tls: { cert: readFileSync(a.cert!, "utf8"), key: readFileSync(a.key!, "utf8") },
    fetch: fetchHandler,
    websocket,
  });
}
if (a.tcp) {
  // An echo that loses nothing: what the kernel does not take now is queued and written on drain
  // (socket.write returns how much it took; ignoring that dropped the tail of any echo larger than
  // the socket buffers), and the client's FIN is answered with ours only after the queue is out.
  type Echo = { queue: Uint8Array[]; ended: boolean };
  const flush = (socket: import("bun").Socket<Echo>) => {
    const q = socket.data.queue;
    while (q.length > 0) {
      const head = q[0]!;
      const n = socket.write(head);
      if (n < head.length) {
        q[0] = head.subarray(Math.max(0, n));
        return;
      }
      q.shift();
    }
    if (socket.data.ended) socket.end();
  };
  Bun.listen<Echo>({
    hostname: host,
    port: Number(a.tcp),
    allowHalfOpen: true,
    socket: {
      open(socket) {
        socket.data = { queue: [], ended: false };
      },
      data(socket, data) {
        if (socket.data.queue.length > 0) {
          socket.data.queue.push(new Uint8Array(data));
          return;
        }
        const n = socket.write(data);
        if (n < data.length) socket.data.queue.push(new Uint8Array(data.subarray(Math.max(0, n))));
      },
      drain(socket) {
        flush(socket);
      },
      end(socket) {
        socket.data.ended = true;
        flush(socket);
      },
    },
  });
}
if (a.udp) {
  await Bun.udpSocket({
    hostname: host,
    port: Number(a.udp),
    socket: {
      data(socket, data, port, address) {
        socket.send(data, port, address);
      },
    },
  });
}
console.log(`ready ${name}`);
