// TLS Secrets as the gateway reads them (EdgeMesh's getTLSCertAndKey): tls.crt and tls.key,
// and ca.crt when client certificates are to be checked. Istio's generic-secret keys (cert,
// key, cacert) are read too. The material is checked here, in the control plane, so a broken
// Secret is reported by name and key when it changes instead of failing every handshake later:
// the certificate and key must parse and belong together, ca.crt must parse.

import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import type { KubeObject } from "../objects.ts";

export interface SecretTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
  /** sha256 over the material (first 16 hex digits): changes when any of it changes. */
  readonly revision: string;
  /** Subject and expiry, for logs and /routes. */
  readonly subject: string;
  readonly notAfter: string;
}

export type SecretResult = { readonly ok: true; readonly tls: SecretTls } | { readonly ok: false; readonly error: string };

const cache = new WeakMap<KubeObject, SecretResult>();

/** Parses (and caches by object identity: store objects are never mutated) one Secret. */
export function parseTlsSecret(secret: KubeObject): SecretResult {
  let r = cache.get(secret);
  if (r === undefined) {
    r = parse(secret);
    cache.set(secret, r);
  }
  return r;
}

function parse(secret: KubeObject): SecretResult {
  const name = `Secret ${secret.metadata.namespace ?? "default"}/${secret.metadata.name}`;
  const fail = (why: string): SecretResult => ({ ok: false, error: `${name}: ${why}` });
  let cert: string | undefined;
  let key: string | undefined;
  let ca: string | undefined;
  try {
    cert = field(secret, "tls.crt") ?? field(secret, "cert");
    key = field(secret, "tls.key") ?? field(secret, "key");
    ca = field(secret, "ca.crt") ?? field(secret, "cacert");
  } catch (err) {
    return fail((err as Error).message);
  }
  if (cert === undefined) return fail("no tls.crt in data");
  if (key === undefined) return fail("no tls.key in data");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    return fail(`tls.crt is not a PEM certificate (${(err as Error).message})`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) return fail("tls.key does not belong to the certificate in tls.crt");
  } catch (err) {
    return fail(`tls.key is not a PEM private key (${(err as Error).message})`);
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      return fail(`ca.crt is not a PEM certificate (${(err as Error).message})`);
    }
  }
  const revision = createHash("sha256")
    .update(cert)
    .update("\0")
    .update(key)
    .update("\0")
    .update(ca ?? "")
    .digest("hex")
    .slice(0, 16);
  return { ok: true, tls: Object.freeze({ cert, key, ca: ca ?? null, revision, subject: x509.subject, notAfter: x509.validTo }) };
}

/** data (base64, as the API sends it) or stringData (manifests written by hand). */
function field(secret: KubeObject, name: string): string | undefined {
  const raw = secret as KubeObject & { stringData?: Record<string, unknown> };
  const s = raw.stringData?.[name];
  if (typeof s === "string" && s !== "") return s;
  const d = secret.data?.[name];
  if (d === undefined || d === null || d === "") return undefined;
  if (typeof d !== "string") throw new Error(`data[${JSON.stringify(name)}] is not a string`);
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(d)) throw new Error(`data[${JSON.stringify(name)}] is not base64`);
  return Buffer.from(d, "base64").toString("utf8");
}
