import { describe, expect, test } from "bun:test";
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedScanner } from "../../src/gateway/http/chunked.ts";
import { findHeadEnd, parseRequestHead, PARSE_H2, PARSE_OK, RequestHead } from "../../src/gateway/http/request-head.ts";
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, parseResponseHead, responseFraming, ResponseHead } from "../../src/gateway/http/response-head.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function parse(text: string): { code: number; h: RequestHead } {
  const h = new RequestHead();
  const b = enc(text);
  return { code: parseRequestHead(b, 0, b.length, h), h };
}

describe("request head", () => {
  test("finds the end of a head arriving a byte at a time, with CRLF or bare LF", () => {
    const b = enc("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY");
    let from = 0;
    let end = -1;
    for (let n = 1; n <= b.length && end < 0; n++) {
      end = findHeadEnd(b, 0, from, n);
      from = n;
    }
    expect(end).toBe(b.length - 4);
    expect(findHeadEnd(enc("GET / HTTP/1.0\n\nX"), 0, 0, 17)).toBe(16);
    expect(findHeadEnd(enc("XXGET / HTTP/1.0\n\nX"), 2, 2, 19)).toBe(18);
    expect(findHeadEnd(enc("GET / HTTP/1.1\r\nHost: a\r\n"), 0, 0, 25)).toBe(-1);
  });

  test("reads method, target, path, query, host and framing", () => {
    const { code, h } = parse("POST /a/b?x=1&y=2 HTTP/1.1\r\nHost: Example.COM:8080\r\nContent-Length: 12\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    expect(code).toBe(PARSE_OK);
    expect(h.method).toBe("POST");
    expect(h.target).toBe("/a/b?x=1&y=2");
    expect(h.path).toBe("/a/b");
    expect(h.query).toBe("x=1&y=2");
    expect(h.host).toBe("example.com");
    expect(h.contentLength).toBe(12);
    expect(h.chunked).toBe(false);
    expect(h.close).toBe(false);
    expect(h.xffIndex).toBe(2);
    expect(h.header("x-forwarded-for")).toBe("1.2.3.4");
    expect(h.header("nope")).toBeNull();
  });

  test("connection semantics: HTTP/1.0 closes unless keep-alive; Connection: close; upgrade needs both headers", () => {
    expect(parse("GET / HTTP/1.0\r\n\r\n").h.close).toBe(true);
    expect(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").h.close).toBe(false);
    const c = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").h;
    expect(c.close).toBe(true);
    expect(c.hop[1]).toBe(1);
    expect(parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").h.upgrade).toBe(true);
    expect(parse("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").h.upgrade).toBe(false);
  });

  test("absolute-form targets route by their authority; the h2 preface is recognised", () => {
    const { h } = parse("GET http://Svc.Example/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
    expect(h.host).toBe("svc.example");
    expect(h.target).toBe("/p?q");
    expect(parse("PRI * HTTP/2.0\r\n\r\n").code).toBe(PARSE_H2);
  });

  test("malformed requests get 400, too many header lines 431, unknown codings 501, HTTP/2+ text 505", () => {
    const bad = [
      "GET / HTTP/1.1\r\n\r\n", // no Host
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two Hosts
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTX/1.1\r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n", // space before colon
      "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", // obs-fold
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", // bare CR
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\u0001\r\n\r\n", // control byte
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", // smuggling
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for (const text of bad) expect([text, parse(text).code]).toEqual([text, 400]);
    const many = "GET / HTTP/1.1\r\nHost: a\r\n" + "X-A: b\r\n".repeat(200) + "\r\n";
    expect(parse(many).code).toBe(431);
    expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n").code).toBe(501);
    expect(parse("GET / HTTP/3.0\r\nHost: a\r\n\r\n").code).toBe(505);
    expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").h.chunked).toBe(true);
  });

  test("random bytes never throw (they parse or give a status)", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const alphabet = enc("GET POST / HTTP/1.1 Host: a\r\n\r\n:\t 0123456789chunked");
    const h = new RequestHead();
    for (let n = 0; n < 5000; n++) {
      const len = 1 + Math.floor(rnd() * 120);
      const b = new Uint8Array(len);
      for (let i = 0; i < len; i++) b[i] = rnd() < 0.9 ? alphabet[Math.floor(rnd() * alphabet.length)]! : Math.floor(rnd() * 256);
      const code = parseRequestHead(b, 0, len, h);
      expect([0, 2, 400, 431, 501, 505]).toContain(code);
    }
  });
});

describe("response head", () => {
  function resp(text: string, method = "GET") {
    const r = new ResponseHead();
    const b = enc(text);
    const ok = parseResponseHead(b, 0, b.length, r);
    return { ok, r, framing: ok ? responseFraming(r, method) : -1 };
  }
  test("framing by status, method, length and chunked", () => {
    expect(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").framing).toBe(BODY_LENGTH);
    expect(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing).toBe(BODY_NONE);
    expect(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing).toBe(BODY_CHUNKED);
    expect(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD").framing).toBe(BODY_NONE);
    expect(resp("HTTP/1.1 204 No Content\r\n\r\n").framing).toBe(BODY_NONE);
    expect(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").framing).toBe(BODY_NONE);
    expect(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").framing).toBe(BODY_NONE);
    const untilClose = resp("HTTP/1.0 200 OK\r\n\r\n");
    expect(untilClose.framing).toBe(BODY_UNTIL_CLOSE);
    expect(untilClose.r.close).toBe(true);
    expect(resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").r.close).toBe(true);
  });
  test("garbage is refused", () => {
    expect(resp("HTTX/1.1 200 OK\r\n\r\n").ok).toBe(false);
    expect(resp("HTTP/1.1 2x0 OK\r\n\r\n").ok).toBe(false);
    expect(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").ok).toBe(false);
  });
});

describe("chunked body scanner", () => {
  const body = "5;ext=1\r\nhello\r\n0c\r\n hello world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  test("finds the end in one piece and byte by byte, with extensions and trailers", () => {
    const b = enc(body);
    const s = new ChunkedScanner();
    expect(s.scan(b, 0, b.length)).toBe(b.length - 4);
    s.reset();
    let end = CHUNKED_MORE;
    for (let i = 0; i < b.length && end === CHUNKED_MORE; i++) end = s.scan(b, i, i + 1);
    expect(end).toBe(b.length - 4);
    s.reset();
    expect(s.scan(enc("0\r\n\r\n"), 0, 5)).toBe(5);
    s.reset();
    expect(s.scan(enc("0\n\n"), 0, 3)).toBe(3);
  });
  test("malformed sizes and missing CRLF after data are errors", () => {
    for (const bad of ["x\r\n", "\r\n", "5\r\nhelloX\r\n", "fffffffffffff\r\n", "5\r\nhello\r\n0\r\nT\r\nX"]) {
      const s = new ChunkedScanner();
      const b = enc(bad);
      const r = s.scan(b, 0, b.length);
      expect([bad, r === CHUNKED_ERROR || r === CHUNKED_MORE]).toEqual([bad, true]);
      if (bad !== "5\r\nhello\r\n0\r\nT\r\nX") expect([bad, r]).toEqual([bad, CHUNKED_ERROR]);
    }
  });
});
