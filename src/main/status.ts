// `edgemesh status`: read a running agent's admin endpoint and print its routes as a table.

import { parseHostPort, joinHostPort } from "../admin/index.ts";

interface RoutesDoc {
  version: number;
  services: {
    namespace: string;
    name: string;
    port: number;
    protocol: string;
    clusterIP: string;
    listen: string;
    policy: string;
    endpoints: { ip: string; port: number; node: string }[];
  }[];
}

export async function runStatus(admin: string, json: boolean): Promise<number> {
  const { host, port } = parseHostPort(admin, "--admin");
  const base = `http://${joinHostPort(host, port)}`;
  let routes: RoutesDoc;
  let ready: string;
  try {
    routes = (await (await fetch(`${base}/routes`)).json()) as RoutesDoc;
    ready = (await (await fetch(`${base}/readyz`)).text()).trim();
  } catch (err) {
    console.error(`edgemesh status: no agent answers at ${base}: ${(err as Error).message}`);
    return 1;
  }
  if (json) {
    console.log(JSON.stringify(routes, null, 2));
    return 0;
  }
  console.log(`${ready}; route table version ${routes.version}`);
  console.log(formatRoutes(routes));
  return 0;
}

/** A readable table of service -> listen address -> endpoints, used by dev mode too. */
export function formatRoutes(routes: Pick<RoutesDoc, "services">): string {
  const rows = [["SERVICE", "PORT", "CLUSTER-IP", "LISTEN", "POLICY", "ENDPOINTS"]];
  for (const s of routes.services) {
    rows.push([
      `${s.namespace}/${s.name}`,
      `${s.port}/${s.protocol}`,
      s.clusterIP || "-",
      s.listen || "-",
      s.policy,
      s.endpoints.map((e) => `${joinHostPort(e.ip, e.port)}${e.node ? "@" + e.node : ""}`).join(",") || "(none)",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
