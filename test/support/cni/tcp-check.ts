// Checksummed bulk TCP for the Edge CNI tests, run inside pod namespaces.
//   --listen IP --port P           accept one connection, hash everything until EOF, print
//                                  {"bytes":N,"sha256":"..."} and exit
//   --connect IP --port P --mib N  send N MiB of pseudo-random data (each MiB block differs),
//                                  print {"bytes":N,"sha256":"...","ms":T} and exit
import { parseArgs } from "node:util";

const { values: a } = parseArgs({ options: { listen: { type: "string" }, connect: { type: "string" }, port: { type: "string", default: "9100" }, mib: { type: "string", default: "100" } } });
const port = Number(a.port);
const hasher = new Bun.CryptoHasher("sha256");

if (a.listen) {
  let bytes = 0;
  const server = Bun.listen({
    hostname: a.listen,
    port,
    socket: {
      data(_s, d) {
        bytes += d.length;
        hasher.update(d);
      },
      close() {
        console.log(JSON.stringify({ bytes, sha256: hasher.digest("hex") }));
        server.stop(true);
        process.exit(0);
      },
      error() {},
    },
  });
  console.log("listening");
} else {
  const total = Number(a.mib) * 1024 * 1024;
  const block = new Uint8Array(1024 * 1024);
  crypto.getRandomValues(block);
  const t0 = performance.now();
  let sent = 0;
  let blockNo = 0;
  let pending: Uint8Array | null = null;
  const next = (): Uint8Array | null => {
    if (sent >= total) return null;
    const b = new Uint8Array(block); // a copy per MiB: the socket may keep what it did not send
    new DataView(b.buffer).setUint32(0, blockNo++);
    hasher.update(b);
    sent += b.length;
    return b;
  };
  const write = (s: { write(b: Uint8Array): number; end(): void }) => {
    for (;;) {
      const b = pending ?? next();
      pending = null;
      if (b === null) {
        s.end();
        return;
      }
      const n = s.write(b);
      if (n < b.length) {
        pending = b.subarray(Math.max(0, n));
        return;
      }
    }
  };
  Bun.connect({
    hostname: a.connect!,
    port,
    socket: {
      open: write,
      drain: write,
      close() {
        console.log(JSON.stringify({ bytes: sent, sha256: hasher.digest("hex"), ms: Math.round(performance.now() - t0) }));
        process.exit(0);
      },
      error(_s, err) {
        console.log(JSON.stringify({ error: String(err) }));
        process.exit(1);
      },
      connectError(_s, err) {
        console.log(JSON.stringify({ error: String(err) }));
        process.exit(1);
      },
    },
  });
}
