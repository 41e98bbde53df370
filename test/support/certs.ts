// Test PKI made with the openssl CLI in a temp dir: two independent CAs ("right" and "wrong"),
// a server certificate for 127.0.0.1/localhost and a client certificate signed by each CA.
// Used by the TLS tests of the Kubernetes source and the stand-in apiserver. Call cleanup().

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CertPair {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  ca: { file: string; pem: string; key: string };
  wrongCa: { file: string; pem: string; key: string };
  server: CertPair;
  client: CertPair;
  /** A client certificate signed by the wrong CA: a server trusting `ca` must refuse it. */
  strangerClient: CertPair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

function makeCa(dir: string, name: string) {
  const key = join(dir, `${name}.key`);
  const file = join(dir, `${name}.crt`);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", file,
    "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  return { file, pem: Bun.file(file).text(), key };
}

function issue(dir: string, name: string, ca: { file: string; key: string }, ext: string): CertPair {
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${name}`], dir);
  openssl(["x509", "-req", "-in", csr, "-CA", ca.file, "-CAkey", ca.key, "-CAcreateserial",
    "-out", certFile, "-days", "2", "-extfile", extFile], dir);
  return { certFile, keyFile, cert: "", key: "" };
}

export async function createTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-pki-"));
  const ca = makeCa(dir, "ca");
  const wrongCa = makeCa(dir, "wrong-ca");
  const server = issue(dir, "server", ca,
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const clientExt = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
  const client = issue(dir, "client", ca, clientExt);
  const strangerClient = issue(dir, "stranger", wrongCa, clientExt);
  for (const pair of [server, client, strangerClient]) {
    pair.cert = await Bun.file(pair.certFile).text();
    pair.key = await Bun.file(pair.keyFile).text();
  }
  return {
    dir,
    ca: { file: ca.file, pem: await ca.pem, key: ca.key },
    wrongCa: { file: wrongCa.file, pem: await wrongCa.pem, key: wrongCa.key },
    server,
    client,
    strangerClient,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
