// UDP echo server: sends every datagram back to where it came from, unchanged.
// Prints {"port"} and runs until killed.

export {};

const socket = await Bun.udpSocket({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    data(sock, buf, port, address) {
      try {
        sock.send(buf, port, address);
      } catch {
        // A vanished client (ICMP unreachable) must not stop the echo.
      }
    },
    error() {},
  },
});
console.log(JSON.stringify({ port: socket.port }));
process.on("SIGTERM", () => {
  socket.close();
  process.exit(0);
});
