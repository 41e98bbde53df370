// The stand-in apiserver (../apiserver.ts) as its own process, so a benchmark can measure the
// agent's memory without the stand-in's. Prints one JSON line {"url","control"} on stdout.
// Control API (plain http on 127.0.0.1): POST /apply {op: "add"|"update"|"upsert"|"remove",
// kind, obj | namespace+name}; POST /load {kind, objs}; POST /seed {services, endpointsPerService}.
//   bun test/support/apiserver/main.ts

import { startStandInApiServer, type StandInKind } from "../apiserver.ts";
import * as fx from "./fixtures.ts";

const api = await startStandInApiServer({ historyLimit: 100_000 });

function seed(services: number, perService: number): void {
  const svcs = [];
  const slices = [];
  for (let i = 0; i < services; i++) {
    const ns = `ns-${i % 100}`;
    const name = `svc-${i}`;
    svcs.push(fx.service(ns, name, `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`));
    const ips = [];
    for (let j = 0; j < perService; j++) {
      const n = i * perService + j;
      ips.push(`10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`);
    }
    slices.push(fx.endpointSlice(ns, name, ips));
  }
  api.load("Service", svcs);
  api.load("EndpointSlice", slices);
}

const control = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    const body = (await req.json()) as any;
    if (path === "/seed") seed(body.services, body.endpointsPerService);
    else if (path === "/load") api.load(body.kind as StandInKind, body.objs);
    else if (path === "/apply") {
      const kind = body.kind as StandInKind;
      if (body.op === "remove") api.remove(kind, body.namespace, body.name);
      else api[body.op as "add" | "update" | "upsert"](kind, body.obj);
    } else return new Response("not found", { status: 404 });
    return Response.json({ resourceVersion: api.resourceVersion });
  },
});

console.log(JSON.stringify({ url: api.url, control: `http://127.0.0.1:${control.port}` }));
process.on("SIGTERM", async () => {
  control.stop(true);
  await api.stop();
  process.exit(0);
});
