// One process of bench/macro/libp2p-floor.ts, run from its bundle. Modes:
//   bare                   imports nothing (the stack is a chunk it never loads), prints "ready"
//   imported               loads the libp2p stack's modules, starts nothing, prints "ready"
//   listen IP PORT         a started node (FLOOR_NATIVE=1: native AEAD, see startNode); prints "addr <multiaddr>"
//   dial IP PORT ADDR      a started node that dials ADDR, echoes once, prints "ready"; on SIGUSR2
//                          runs the load (FLOOR_SECONDS, FLOOR_STREAMS) and prints "loaded <json>"
// Every mode then stays idle until SIGTERM.

export {};

const [mode, ip, port, addr] = process.argv.slice(2);
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1 << 30);

if (mode === "bare") console.log("ready");
else {
  const stack = await import("./libp2p-floor-stack.ts");
  if (mode === "imported") console.log("ready");
  else if (mode === "listen" || mode === "dial") {
    const node = await stack.startNode(ip!, Number(port), process.env.FLOOR_NATIVE === "1");
    if (mode === "listen") console.log(`addr ${node.getMultiaddrs().find((m) => m.toString().includes("/tcp/"))}`);
    else {
      await stack.openEcho(node, addr!);
      console.log("ready");
      process.on("SIGUSR2", () => {
        stack.load(node, addr!, Number(process.env.FLOOR_SECONDS ?? 3), Number(process.env.FLOOR_STREAMS ?? 64)).then(
          (r) => console.log(`loaded ${JSON.stringify(r)}`),
          (err) => console.log(`load failed: ${(err as Error).stack}`),
        );
      });
    }
  } else throw new Error(`libp2p-floor-node: unknown mode ${mode}`);
}
