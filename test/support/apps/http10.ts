// One raw HTTP/1.0 GET on a new TCP connection, read to the server's close: the request the load
// apps (client.ts, ticker.ts) send, so each one is load-balanced on its own.

/** Resolves with the body of a 200; rejects on another status, a malformed answer, an error or
 * after timeoutMs (the socket is closed then). */
export function http10Get(host: string, port: number, request: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sock: { end(): void } | undefined;
    let done = false;
    const finish = (err: Error | null, body = "") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(body);
    };
    const timer = setTimeout(() => {
      finish(new Error("timeout"));
      sock?.end();
    }, timeoutMs);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          s.write(request);
        },
        data(_s, d) {
          chunks.push(Buffer.from(d));
        },
        close() {
          const text = Buffer.concat(chunks).toString();
          const head = text.indexOf("\r\n\r\n");
          if (!text.startsWith("HTTP/1.") || head < 0) return finish(new Error(`bad response: ${JSON.stringify(text.slice(0, 60))}`));
          const status = Number(text.slice(9, 12));
          if (status !== 200) return finish(new Error(`status ${status}`));
          finish(null, text.slice(head + 4));
        },
        error(_s, err) {
          finish(err);
        },
        connectError(_s, err) {
          finish(err);
        },
      },
    })
      .then((s) => {
        sock = s;
        if (done) s.end();
      })
      .catch((err) => finish(err as Error));
  });
}
