// The RSS reference: a Bun process that does nothing but hold one TCP listener. What the runtime
// alone costs, next to which the proxy's own memory is judged. Prints {"port"}; runs until killed.

export {};

const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
console.log(JSON.stringify({ port: server.port }));
process.on("SIGTERM", () => process.exit(0));
