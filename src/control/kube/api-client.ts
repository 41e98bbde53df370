// @kubernetes/client-node's generated API classes (CoreV1Api, CustomObjectsApi, ...) running on
// our KubeFetch, so their requests carry the TLS settings and credentials under Bun too. The
// stock makeApiClient() sends through undici's fetch with a dispatcher Bun ignores (see
// fetch-tls.ts). For one-off reads such as the gateway's Secrets; the informers do not need it.
// The client library is imported lazily (it costs ~50 MiB of RSS).

import type { KubeFetch } from "./fetch-tls.ts";

export async function makeApiClient<T>(f: KubeFetch, apiClass: new (config: any) => T): Promise<T> {
  const k = await import("@kubernetes/client-node");
  const httpApi = k.wrapHttpLibrary({
    async send(req) {
      const url = new URL(req.getUrl());
      const res = await f.request(url.pathname + url.search, {
        method: String(req.getHttpMethod()),
        body: req.getBody() as string | undefined,
        headers: req.getHeaders(),
        signal: req.getSignal() as AbortSignal | undefined,
      });
      const headers: Record<string, string> = {};
      res.headers.forEach((value, name) => (headers[name] = value));
      return new k.ResponseContext(res.status, headers, {
        text: () => res.text(),
        binary: async () => Buffer.from(await res.arrayBuffer()),
        stream: () => res.body,
      });
    },
  });
  return new apiClass(k.createConfiguration({ baseServer: new k.ServerConfiguration(f.server, {}), httpApi }));
}
