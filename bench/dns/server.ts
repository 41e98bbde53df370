// The DNS server under benchmark, in its own process (like dnsmasq): a frozen table with the
// benchmark's cluster name among 1,000 others, forwarding the rest to --upstream.
// Prints {"port":N} on stdout once listening; exits when stdin closes or on SIGTERM.
import { deepFreeze, type RouteTable, type ServiceRecord } from "../../src/control/index.ts";
import { createDnsServer } from "../../src/dns/index.ts";
import { createLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
};

const services: ServiceRecord[] = [];
for (let i = 0; i < 1000; i++) {
  services.push({
    namespace: "default", name: i === 0 ? "web" : `svc-${i}`, type: "ClusterIP",
    clusterIPs: [`10.96.${i >> 8}.${i & 0xff}`], externalName: "", ports: [{ name: "http", port: 80, protocol: "TCP" }],
    endpoints: [],
  });
}
const table: RouteTable = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services });
const server = createDnsServer({
  table: { current: () => table, subscribe: () => () => {} },
  listen: { host: "127.0.0.1", port: Number(arg("port", "0")) },
  tcp: true,
  clusterDomain: "cluster.local",
  ttl: 30,
  upstreams: [arg("upstream", "127.0.0.1:53")],
  cacheSize: 10_000,
  metrics: createMetrics(),
  log: createLogger({ level: "warn" }),
});
const { udpPort } = await server.start();
process.stdout.write(JSON.stringify({ port: udpPort }) + "\n");
const quit = () => {
  server.stop();
  process.exit(0);
};
process.on("SIGTERM", quit);
process.stdin.on("end", quit);
process.stdin.resume();
