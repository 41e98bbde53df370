// The command line as a user meets it: bin/edgemesh as a process, its exit codes (0 done,
// 1 failed, 2 bad command line) and what it prints. `validate` runs as an unprivileged user and
// leaves no trace: no state directory, no device.

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const BIN = join(ROOT, "bin/edgemesh");
const pkg = await Bun.file(join(ROOT, "package.json")).json();
const dir = mkdtempSync(join(tmpdir(), "edgemesh-cli-"));
chmodSync(dir, 0o755); // readable by the unprivileged user below
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs bin/edgemesh; `asNobody` drops to uid/gid 65534 with no capabilities first. */
async function edgemesh(args: string[], options: { asNobody?: boolean; env?: Record<string, string> } = {}) {
  if (options.asNobody) nobodyCanReachBin();
  const argv = options.asNobody ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", BIN, ...args] : [BIN, ...args];
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...options.env };
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env, cwd: dir });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

let reachable = false;
/**
 * The unprivileged runs need every directory above the clone searchable by others. A clone under
 * a `mktemp -d` folder (mode 0700) is not: say that, instead of an exit code 2 from setpriv.
 */
function nobodyCanReachBin(): void {
  if (reachable) return;
  const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-x", BIN]);
  if (r.exitCode !== 0) throw new Error(`uid 65534 cannot reach ${BIN}: every directory above the clone must be searchable by others (chmod o+x); a clone inside a mktemp -d folder (mode 0700) is not`);
  reachable = true;
}

function config(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n${text}`);
  chmodSync(path, 0o644);
  return path;
}

/** A file as written, no header added (a gateway's, or EdgeMesh's kind-less ConfigMap content). */
function rawFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o644);
  return path;
}
const GATEWAY_HEAD = "apiVersion: gateway.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshGateway\n";
/** EdgeMesh's edgemesh-gateway chart, rendered with its default values (no apiVersion/kind). */
const EDGEMESH_GATEWAY_CM = "modules:\n  edgeGateway:\n    enable: true\n  edgeTunnel:\n    enable: true\n";

describe("edgemesh (the command line)", () => {
  test("--help and help print the usage of every command and exit 0", async () => {
    for (const args of [["--help"], ["help"], []]) {
      const r = await edgemesh(args);
      expect(r.code).toBe(0);
      for (const cmd of ["agent", "dev", "gateway", "status", "validate"]) expect(r.stdout).toContain(`edgemesh ${cmd}`);
      expect(r.stdout).toContain("--config-file");
    }
  });

  test("help per command: only that command, exit 0", async () => {
    for (const args of [["validate", "--help"], ["help", "validate"], ["validate", "-h"]]) {
      const r = await edgemesh(args);
      expect(r.code).toBe(0);
      expect(r.stdout.startsWith("usage: edgemesh validate --config FILE")).toBe(true);
      expect(r.stdout).not.toContain("edgemesh agent");
    }
  });

  test("--version prints the package version and the runtime, exit 0", async () => {
    const r = await edgemesh(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^edgemesh-bun ${pkg.version.replaceAll(".", "\\.")} \\(revision \\S+; bun \\d+\\.\\d+\\.\\d+, linux/(x64|arm64)\\)\\n$`));
  });

  test("a bad command line exits 2 with the reason first, then the relevant usage", async () => {
    const unknown = await edgemesh(["proxy"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split("\n")[0]).toBe('edgemesh: unknown command "proxy"');
    expect(unknown.stderr).toContain("edgemesh agent --config FILE");
    const missing = await edgemesh(["agent"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.split("\n")[0]).toBe("edgemesh: agent needs --config FILE");
    expect(missing.stderr).toContain("usage: edgemesh agent --config FILE");
    expect(missing.stderr).not.toContain("edgemesh dev");
  });

  test("validate as an unprivileged user: prints the effective config, creates nothing, exit 0", async () => {
    const stateDir = join(dir, "state-never-created");
    const path = config("good.yaml", `commonConfig:\n  bridgeDeviceName: emvalid0\n  stateDir: ${stateDir}\nmodules:\n  edgeProxy:\n    enable: true\n  edgeTunnel:\n    enable: true\n    psk:\n      enable: false\n`);
    const r = await edgemesh(["validate", "--config-file", path], { asNobody: true, env: { NODE_NAME: "n1" } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`# effective config of ${path}`);
    expect(r.stdout).toContain("bridgeDeviceName: emvalid0");
    expect(r.stdout).toContain("listenPort: 20006"); // a default filled in
    expect(existsSync(stateDir)).toBe(false);
    const link = Bun.spawnSync(["ip", "link", "show", "dev", "emvalid0"], { stderr: "pipe" });
    expect(link.exitCode).not.toBe(0);
  });

  test("validate of a file the agent would refuse: exit 1, the key named, nothing on stdout", async () => {
    const path = config("bad.yaml", "modules:\n  edgeDNS:\n    listenPort: 0\n");
    const r = await edgemesh(["validate", "--config", path], { asNobody: true });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("modules.edgeDNS.listenPort: expected a port number 1..65535, got 0");
  });

  test("agent takes EdgeMesh's --config-file, and without root stops with one line naming the fix", async () => {
    const path = config("agent.yaml", "modules:\n  edgeProxy:\n    enable: true\n");
    const r = await edgemesh(["agent", "--config-file", path], { asNobody: true, env: { NODE_NAME: "n1" } });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("needs root");
    expect(lines[0]).toContain("edgemesh dev");
  });

  test("an x86-64 CPU without AVX2 gets a warning naming the baseline build, and still runs", async () => {
    const cpuinfo = (flags: string) => {
      const path = join(dir, `cpuinfo-${flags.length}`);
      writeFileSync(path, `processor\t: 0\nflags\t\t: ${flags}\n`);
      return path;
    };
    const old = cpuinfo("fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx");
    const modern = cpuinfo("fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx avx2 bmi2");
    const onX64 = process.arch === "x64";
    const warned = await edgemesh(["--version"], { env: { EDGEMESH_CPUINFO: old } });
    expect(warned.code).toBe(0);
    expect(warned.stderr.includes("no AVX2") && warned.stderr.includes("BUN_BUILD=baseline")).toBe(onX64);
    expect((await edgemesh(["--version"], { env: { EDGEMESH_CPUINFO: modern } })).stderr).toBe("");
    expect((await edgemesh(["--version"], { env: { EDGEMESH_CPUINFO: old, EDGEMESH_BUN_BUILD: "baseline" } })).stderr).toBe("");
  });

  test("validate of an EdgeMeshGateway file: the gateway's view (identity NODE-gateway, its admin port), and the printed file loads back the same", async () => {
    const path = rawFile("gw.yaml", GATEWAY_HEAD + "modules:\n  edgeGateway:\n    enable: true\n    nic: eth1,eth2\n    excludeIP: 192.168.1.0/24\n  edgeTunnel:\n    enable: true\n    psk:\n      enable: false\n");
    const r = await edgemesh(["validate", "--config", path], { asNobody: true, env: { NODE_NAME: "edge-gw" } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(""); // no "not built" warning for edgeGateway.enable: this is the gateway
    expect(r.stdout).toContain("(EdgeMeshGateway: for `edgemesh gateway`)");
    expect(r.stdout).toContain("tunnel identity edge-gw-gateway, admin 127.0.0.1:10552");
    expect(r.stdout).toContain('listeners on the IPv4 addresses of nic "eth1,eth2" (includeIP "*", excludeIP "192.168.1.0/24")');
    expect(r.stdout).toContain("kind: EdgeMeshGateway\n");
    expect(r.stdout).toContain("adminAddress: 127.0.0.1:10552");
    // The printed config is a gateway file that validates to the same config.
    const again = rawFile("gw-again.yaml", r.stdout);
    const r2 = await edgemesh(["validate", "--config", again], { asNobody: true, env: { NODE_NAME: "edge-gw" } });
    expect(r2.code).toBe(0);
    const body = (t: string) => t.split("\n").filter((l) => !l.startsWith("# effective config of")).join("\n");
    expect(body(r2.stdout)).toBe(body(r.stdout));
    const json = await edgemesh(["validate", "--config", path, "--json"], { asNobody: true, env: { NODE_NAME: "edge-gw" } });
    expect(JSON.parse(json.stdout).modules.edgeGateway).toEqual({ enable: true, nic: "eth1,eth2", includeIP: "*", excludeIP: "192.168.1.0/24", loadBalancer: { consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 } } });
  });

  test("validate of EdgeMesh's kind-less edgemesh-gateway ConfigMap content reads it as the gateway's; the shipped component's file passes", async () => {
    const r = await edgemesh(["validate", "--config", rawFile("edgemesh-gateway.yaml", EDGEMESH_GATEWAY_CM)], { asNobody: true, env: { NODE_NAME: "n1" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("tunnel identity n1-gateway");
    expect(r.stderr).not.toContain("not built");
    expect(r.stderr).toContain("modules.edgeTunnel.psk.path: /etc/edgemesh/psk cannot be read here (ENOENT); the gateway reads it at start");
    const shipped = await edgemesh(["validate", "--config", join(ROOT, "deploy/components/gateway/edgemesh-gateway.yaml")], { env: { NODE_NAME: "n1" } });
    expect(shipped.code).toBe(0);
    expect(shipped.stdout).toContain("admin 127.0.0.1:10552");
    expect(shipped.stderr.trim().split("\n").every((l) => l.includes("psk.path"))).toBe(true);
    // An agent file with the same module keeps the agent's view and its warning.
    const agent = await edgemesh(["validate", "--config", config("agent-gw.yaml", EDGEMESH_GATEWAY_CM)], { asNobody: true, env: { NODE_NAME: "n1" } });
    expect(agent.stdout).not.toContain("edgemesh gateway` runs it");
    expect(agent.stderr).toContain("modules.edgeGateway.enable: accepted for EdgeMesh compatibility but not built");
  });

  test("validate of a gateway file the gateway would refuse: exit 1, the key named, nothing on stdout; secure identity passes", async () => {
    const bad = await edgemesh(["validate", "--config", rawFile("gw-bad.yaml", GATEWAY_HEAD + "modules:\n  edgeGateway:\n    enable: true\n    includeIP: 10.0.0.0/33\n    nic: 7\n")], { asNobody: true });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain("modules.edgeGateway.includeIP");
    expect(bad.stderr).toContain("modules.edgeGateway.nic");
    const secure = await edgemesh(["validate", "--config", rawFile("gw-secure.yaml", GATEWAY_HEAD + "modules:\n  edgeGateway:\n    enable: true\n  edgeTunnel:\n    enable: true\n    identityMode: secure\n")], { asNobody: true, env: { NODE_NAME: "n1" } });
    // Secure identity is supported: validate says where the gateway publishes its peer ID.
    expect(secure.code).toBe(0);
    expect(secure.stdout).toContain("identityMode secure: the gateway's key is kept in");
    expect(secure.stdout).toContain("published on Node n1 as edgemesh.kubeedge.io/gateway-peer-id");
    const mismatched = await edgemesh(["validate", "--config", rawFile("gw-kind.yaml", "apiVersion: gateway.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n")], { asNobody: true });
    expect(mismatched.code).toBe(1);
    expect(mismatched.stderr).toContain('kind: expected "EdgeMeshGateway" with apiVersion "gateway.edgemesh.config.kubeedge.io/v1alpha1"');
  });
});
