// The in-run reference of bench/netns-bench.ts --ref nginx (issue 13): what the cheapest possible
// userspace relay reaches on the agents' path in the same bed, so a ratio we cannot reach can be
// told apart from one we do not reach.
//
//   cross-node: client pod -> DNAT in n1 -> nginx on n1 -> TCP -> nginx on n2 -> server pod
//     nginx_plain: the n1 -> n2 hop plain TCP (no crypto, no multiplexing: one upstream TCP
//       connection per client connection, where our agents carry every flow as a yamux stream of
//       one Noise-encrypted connection).
//     nginx_tls: the n1 -> n2 hop TLS 1.3 (proxy_ssl on to an `ssl` listener on n2, ECDSA P-256
//       certificate made by openssl at run time, TLS_CHACHA20_POLY1305_SHA256: the AEAD our Noise
//       tunnel uses), the nearest C equivalent of our encrypted tunnel without multiplexing.
//     nginx_tls_aes: the same with TLS_AES_128_GCM_SHA256 (AES-NI), the cheapest AEAD here, which
//       libp2p's Noise (ChaChaPoly only) cannot use: whether the cipher is what costs.
//   local: client pod -> DNAT in n1 -> nginx on n1 -> server pod (one hop, as the one-node proxy).
//
// nginx's stream module, one process each (master_process off, so the pid we hold is the one that
// forwards; our agents are single-threaded too), default buffers (proxy_buffer_size 16k), no
// splice. The client reaches n1's nginx as it reaches the agents: a DNAT rule in n1's PREROUTING
// from a virtual IP to a local listener. Processes are spawned through the bed (killed by its
// destroy()), files live in the cluster's directory and the rule in n1's namespace: nothing
// outlives the run.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestNode } from "../test/support/netns.ts";

/** Where Debian's libnginx-mod-stream puts the module (apt-get install libnginx-mod-stream). */
const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
/** Listen port on both nodes and the virtual IP the client pod dials (DNATed in n1 like the
 * agents' cluster IPs) per path; `suite` is the n1 -> n2 hop's TLS 1.3 cipher suite. */
const PLAIN = { name: "nginx_plain", port: 15080, vip: "10.96.3.1" } as const;
const TLS = [
  { name: "nginx_tls", port: 15443, vip: "10.96.3.2", suite: "TLS_CHACHA20_POLY1305_SHA256" },
  { name: "nginx_tls_aes", port: 15444, vip: "10.96.3.3", suite: "TLS_AES_128_GCM_SHA256" },
] as const;

export interface RefPath {
  name: typeof PLAIN.name | (typeof TLS)[number]["name"];
  url: string;
  /** pid per node of the processes on this path. */
  pids: Record<string, number>;
}

export function nginxMissing(): string {
  if (!Bun.which("nginx")) return "nginx not installed (apt-get install -y nginx)";
  if (!existsSync(NGINX_STREAM_MODULE)) return `${NGINX_STREAM_MODULE} missing (apt-get install -y libnginx-mod-stream)`;
  return "";
}

function conf(dir: string, node: string, servers: string[]): string {
  const path = join(dir, `nginx-${node}.conf`);
  writeFileSync(
    path,
    `load_module ${NGINX_STREAM_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n` +
      `error_log stderr warn;\npid ${join(dir, `nginx-${node}.pid`)};\n` +
      `events { worker_connections 1024; }\nstream {\n${servers.map((s) => `  server { ${s} }\n`).join("")}}\n`,
  );
  return path;
}

/**
 * Start the relay(s) and the DNAT rules; `exit` (the server's node) only in cross-node mode.
 * Returns once each path answers `expect` from the client pod (checked by `probe`).
 */
export async function startNginxRefs(o: {
  dir: string;
  entry: TestNode;
  exit?: TestNode;
  server: string;
  probe: (url: string) => Promise<boolean>;
}): Promise<RefPath[]> {
  const missing = nginxMissing();
  if (missing) throw new Error(`--ref nginx: ${missing}`);
  const { dir, entry, exit, server } = o;
  const paths: RefPath[] = [];
  const start = (node: TestNode, servers: string[]) => {
    const w = node.spawn(["nginx", "-p", dir, "-c", conf(dir, node.name, servers)]);
    return { w, pid: w.proc.pid };
  };
  const procs: ReturnType<typeof start>[] = [];
  if (exit) {
    const key = join(dir, "nginx-tls.key");
    const cert = join(dir, "nginx-tls.crt");
    const r = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${exit.name}`, "-keyout", key, "-out", cert],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`);
    // The suite is fixed on both ends: the server offers only it, so the handshake proves it.
    const n2 = start(exit, [
      `listen ${exit.ip}:${PLAIN.port}; proxy_pass ${server};`,
      ...TLS.map((t) => `listen ${exit.ip}:${t.port} ssl; ssl_certificate ${cert}; ssl_certificate_key ${key}; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites ${t.suite}; proxy_pass ${server};`),
    ]);
    const n1 = start(entry, [
      `listen ${entry.ip}:${PLAIN.port}; proxy_pass ${exit.ip}:${PLAIN.port};`,
      ...TLS.map((t) => `listen ${entry.ip}:${t.port}; proxy_pass ${exit.ip}:${t.port}; proxy_ssl on; proxy_ssl_session_reuse on; proxy_ssl_protocols TLSv1.3; proxy_ssl_conf_command Ciphersuites ${t.suite};`),
    ]);
    procs.push(n1, n2);
    const pids = { [entry.name]: n1.pid, [exit.name]: n2.pid };
    for (const p of [PLAIN, ...TLS]) paths.push({ name: p.name, url: `http://${p.vip}/`, pids });
  } else {
    const n1 = start(entry, [`listen ${entry.ip}:${PLAIN.port}; proxy_pass ${server};`]);
    procs.push(n1);
    paths.push({ name: PLAIN.name, url: `http://${PLAIN.vip}/`, pids: { [entry.name]: n1.pid } });
  }
  for (const p of exit ? [PLAIN, ...TLS] : [PLAIN]) {
    await entry.must(["iptables", "-t", "nat", "-A", "PREROUTING", "-d", `${p.vip}/32`, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", `${entry.ip}:${p.port}`]);
  }
  for (const p of paths) {
    const deadline = Date.now() + 10_000;
    while (!(await o.probe(p.url))) {
      const dead = procs.find((x) => x.w.proc.exitCode !== null);
      if (dead || Date.now() > deadline) {
        throw new Error(`--ref nginx: ${p.name} does not answer at ${p.url}${dead ? ` (nginx exited ${dead.w.proc.exitCode})` : ""}:\n${procs.map((x) => x.w.output()).join("\n").slice(-3000)}`);
      }
      await Bun.sleep(50);
    }
  }
  return paths;
}
