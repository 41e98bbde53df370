// UDP datagrams of given sizes to an echo server, each with its own content; checks every echo
// has the size and bytes that were sent. Prints {"sent":N,"ok":N,"bad":[...],"lost":[...]}.
//   bun udp-check.ts --host IP --port P --sizes 1,100,1472,4000 [--timeout 3000]
import { parseArgs } from "node:util";

const { values: a } = parseArgs({ options: { host: { type: "string" }, port: { type: "string", default: "9001" }, sizes: { type: "string" }, timeout: { type: "string", default: "3000" } } });
const sizes = a.sizes!.split(",").map(Number);
const want = new Map<number, Uint8Array>();
const ok: number[] = [];
const bad: string[] = [];
const sock = await Bun.udpSocket({
  socket: {
    data(_s, buf) {
      const b = new Uint8Array(buf);
      const id = b.length >= 2 ? (b[0]! << 8) | b[1]! : -1;
      const w = want.get(b.length === 1 ? -1 : id);
      if (!w) return void bad.push(`unexpected ${b.length} bytes`);
      if (w.length !== b.length || !w.every((x, i) => x === b[i])) bad.push(`datagram ${id}: ${b.length} bytes, sent ${w.length}`);
      else ok.push(w.length);
      want.delete(b.length === 1 ? -1 : id);
      if (want.size === 0) done();
    },
  },
});
sizes.forEach((size, i) => {
  const d = new Uint8Array(size);
  for (let j = 0; j < size; j++) d[j] = (j * 31 + i) & 255;
  if (size >= 2) {
    d[0] = i >> 8;
    d[1] = i & 255;
  }
  want.set(size === 1 ? -1 : i, d);
  sock.send(d, Number(a.port), a.host!);
});
const timer = setTimeout(done, Number(a.timeout));
function done(): void {
  clearTimeout(timer);
  console.log(JSON.stringify({ sent: sizes.length, ok: ok.length, okSizes: ok.sort((x, y) => x - y), bad, lost: [...want.values()].map((d) => d.length) }));
  process.exit(0);
}
