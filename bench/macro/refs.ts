// In-run reference proxies for the macro benchmarks: HAProxy (mode tcp, one process, nbthread 1)
// and nginx's stream module (master_process off: one process doing the work), both plain L4
// forwarders on loopback to the same backends as our proxy, with their default buffers (16 KiB
// each) and no splicing. Each gets a temporary directory for its config, pid and log files,
// removed by stop(). Both Debian packages (haproxy, nginx + libnginx-mod-stream) are installed by
// scripts/setup-system.sh; when one is missing, its `missing` says why and nothing is started.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Child, freePort, haveTool, spawnChild, waitTcp } from "./procs.ts";

export interface RefProxy {
  readonly name: "haproxy" | "nginx_stream";
  readonly child: Child;
  /** Listen port per backend name. */
  readonly ports: Record<string, number>;
}

/** Where Debian's libnginx-mod-stream puts the module. */
const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

export function haproxyMissing(): string {
  return haveTool("haproxy") ? "" : "haproxy not installed (scripts/setup-system.sh)";
}

export function nginxStreamMissing(): string {
  if (!haveTool("nginx")) return "nginx not installed (scripts/setup-system.sh)";
  if (!existsSync(NGINX_STREAM_MODULE)) return `${NGINX_STREAM_MODULE} missing (libnginx-mod-stream, scripts/setup-system.sh)`;
  return "";
}

/** backends: name -> loopback port. */
export async function startHaproxy(dir: string, backends: Record<string, number>): Promise<RefProxy> {
  const ports: Record<string, number> = {};
  let listens = "";
  for (const [name, port] of Object.entries(backends)) {
    ports[name] = freePort();
    listens += `listen ${name}\n  bind 127.0.0.1:${ports[name]}\n  server s1 127.0.0.1:${port}\n`;
  }
  const conf = join(dir, "haproxy.cfg");
  writeFileSync(
    conf,
    `global\n  nbthread 1\n  maxconn 4096\n  pidfile ${join(dir, "haproxy.pid")}\n` +
      `defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n${listens}`,
  );
  // -db: foreground, no daemon: the pid we hold is the one process that forwards.
  const child = spawnChild(["haproxy", "-db", "-f", conf]);
  for (const p of Object.values(ports)) await waitTcp(p);
  return { name: "haproxy", child, ports };
}

export async function startNginxStream(dir: string, backends: Record<string, number>): Promise<RefProxy> {
  const ports: Record<string, number> = {};
  let servers = "";
  for (const [name, port] of Object.entries(backends)) {
    ports[name] = freePort();
    servers += `  server { listen 127.0.0.1:${ports[name]}; proxy_pass 127.0.0.1:${port}; }\n`;
  }
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `load_module ${NGINX_STREAM_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n` +
      `error_log ${join(dir, "nginx-error.log")} warn;\npid ${join(dir, "nginx.pid")};\n` +
      `events { worker_connections 4096; }\nstream {\n${servers}}\n`,
  );
  const child = spawnChild(["nginx", "-c", conf, "-p", dir]);
  for (const p of Object.values(ports)) await waitTcp(p);
  return { name: "nginx_stream", child, ports };
}

/** Both references (those installed); stop() ends them and removes their directory. */
export async function startReferences(backends: Record<string, number>): Promise<{ refs: RefProxy[]; missing: Record<string, string>; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "emb-refs-"));
  const refs: RefProxy[] = [];
  const missing: Record<string, string> = {};
  const stop = async () => {
    for (const r of refs) await r.child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const h = haproxyMissing();
    if (h) missing.haproxy = h;
    else refs.push(await startHaproxy(dir, backends));
    const n = nginxStreamMissing();
    if (n) missing.nginx_stream = n;
    else refs.push(await startNginxStream(dir, backends));
  } catch (err) {
    await stop();
    throw err;
  }
  return { refs, missing, stop };
}
