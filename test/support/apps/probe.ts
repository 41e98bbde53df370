export {};
// One-shot probes run inside a pod: WebSocket echo and UDP echo with datagram sizes checked.
// Prints one JSON line.
//   bun probe.ts ws URL MESSAGE...           -> { ok, echoes: [...] }
//   bun probe.ts udp HOST PORT SIZE...       -> { ok, sizes: [...] }  (each reply's length)
//   bun probe.ts udpflow HOST PORT COUNT MS  -> { ok, answered: "0110..." } (one socket, one flow)

const [mode, ...rest] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "timeout" }));
  process.exit(1);
}, 15_000);

if (mode === "ws") {
  const [url, ...messages] = rest;
  const ws = new WebSocket(url!);
  const echoes: string[] = [];
  ws.onopen = () => ws.send(messages[0]!);
  ws.onmessage = (ev) => {
    echoes.push(String(ev.data));
    if (echoes.length < messages.length) ws.send(messages[echoes.length]!);
    else {
      console.log(JSON.stringify({ ok: echoes.every((e, i) => e === messages[i]), echoes }));
      clearTimeout(deadline);
      ws.close();
      process.exit(0);
    }
  };
  ws.onerror = () => {
    console.log(JSON.stringify({ ok: false, error: "websocket error" }));
    process.exit(1);
  };
} else if (mode === "udp") {
  const [host, port, ...sizeText] = rest;
  const sizes = sizeText.map(Number);
  const got: number[] = [];
  let pending: ((n: number) => void) | null = null;
  const sock = await Bun.udpSocket({
    socket: {
      data(_s, data) {
        pending?.(data.byteLength);
      },
    },
  });
  for (const size of sizes) {
    const payload = Buffer.alloc(size, size % 251);
    const reply = new Promise<number>((resolve) => (pending = resolve));
    // Datagrams may be lost; resend a few times before giving up on this size.
    let n = -1;
    for (let attempt = 0; attempt < 3 && n < 0; attempt++) {
      sock.send(payload, Number(port), host!);
      n = await Promise.race([reply, Bun.sleep(1000).then(() => -1)]);
    }
    got.push(n);
  }
  console.log(JSON.stringify({ ok: got.every((n, i) => n === sizes[i]), sizes: got }));
  clearTimeout(deadline);
  sock.close();
  process.exit(0);
} else if (mode === "udpflow") {
  // One socket (one conntrack flow) sending a datagram every INTERVAL ms; reports which got echoed.
  const [host, port, countText, intervalText] = rest;
  const count = Math.min(Number(countText), 10_000);
  const answered: boolean[] = new Array(count).fill(false);
  const sock = await Bun.udpSocket({
    socket: {
      data(_s, data) {
        const i = Number(Buffer.from(data).toString());
        if (i >= 0 && i < count) answered[i] = true;
      },
    },
  });
  clearTimeout(deadline);
  for (let i = 0; i < count; i++) {
    sock.send(String(i), Number(port), host!);
    await Bun.sleep(Number(intervalText));
  }
  await Bun.sleep(500);
  console.log(JSON.stringify({ ok: answered.every(Boolean), answered: answered.map((a) => (a ? 1 : 0)).join("") }));
  sock.close();
  process.exit(0);
} else {
  console.error("usage: probe.ts ws URL MSG... | udp HOST PORT SIZE...");
  process.exit(2);
}
