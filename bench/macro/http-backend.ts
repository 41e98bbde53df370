// Request-rate backend: a Bun HTTP server that answers every request with the same 1 KiB body
// (wrk sends a 1 KiB POST body, so 1 KiB travels each way). Prints {"port"} and runs until killed.

export {};

const BODY = new Uint8Array(1024).fill(0x61);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    // Read the body so the request is fully consumed, as a real service would.
    if (req.body) await req.arrayBuffer();
    return new Response(BODY, { headers: { "content-type": "application/octet-stream" } });
  },
});
console.log(JSON.stringify({ port: server.port }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
