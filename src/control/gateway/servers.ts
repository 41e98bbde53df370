// Gateway spec.servers[] -> what each server asks for: a port, a mode, hosts, TLS settings.
// EdgeMesh applies every Gateway to every gateway instance (spec.selector is not read) and so do
// we. TLS: a credentialName makes EdgeMesh terminate; ca.crt in that Secret makes it require
// client certificates. Istio's modes refine that: PASSTHROUGH routes by SNI without
// terminating, MUTUAL requires client certificates, OPTIONAL_MUTUAL asks for them.

import type { KubeObject } from "../objects.ts";
import type { GatewayPortMode, ServerRef } from "./types.ts";

export interface CompiledServer {
  readonly ref: ServerRef;
  readonly gatewayNamespace: string;
  readonly port: number;
  readonly mode: GatewayPortMode;
  /** Hosts without the "namespace/" part, lower case; with the namespace filter beside them. */
  readonly hosts: readonly { readonly host: string; readonly namespace: string }[];
  readonly credentialName: string;
  readonly clientCert: "none" | "require" | "optional" | "secret";
  readonly minVersion: string;
  readonly maxVersion: string;
  readonly ciphers: string;
  readonly h2: boolean;
}

const TLS_VERSIONS: Record<string, string> = { TLSV1_0: "TLSv1", TLSV1_1: "TLSv1.1", TLSV1_2: "TLSv1.2", TLSV1_3: "TLSv1.3", TLS_AUTO: "" };

/** Go / IANA names (what EdgeMesh reads) to OpenSSL names (what Istio and Node read). */
const CIPHER_NAMES: Record<string, string> = {
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function compileServers(gw: KubeObject, warn: (msg: string) => void): CompiledServer[] {
  const ns = gw.metadata.namespace || "default";
  const key = `${ns}/${gw.metadata.name}`;
  const w = (msg: string) => warn(`Gateway ${key}: ${msg}`);
  const spec = gw.spec;
  if (!isRecord(spec) || !Array.isArray(spec.servers)) {
    w("spec.servers is missing or not a list; ignored");
    return [];
  }
  const out: CompiledServer[] = [];
  spec.servers.forEach((s: unknown, i: number) => {
    const f = `spec.servers[${i}]`;
    if (!isRecord(s) || !isRecord(s.port)) {
      w(`${f}.port: missing; server ignored`);
      return;
    }
    const number = s.port.number;
    if (typeof number !== "number" || !Number.isInteger(number) || number < 1 || number > 65535) {
      w(`${f}.port.number: expected a port number, got ${JSON.stringify(number)}; server ignored`);
      return;
    }
    const protocol = typeof s.port.protocol === "string" ? s.port.protocol.toUpperCase() : "";
    const tls = isRecord(s.tls) ? s.tls : null;
    const tlsMode = typeof tls?.mode === "string" ? tls.mode.toUpperCase() : "";
    const credentialName = typeof tls?.credentialName === "string" ? tls.credentialName.trim() : "";
    if (s.bind !== undefined) w(`${f}.bind is not supported (listen addresses come from modules.edgeGateway); ignored`);
    if (tls?.httpsRedirect === true) w(`${f}.tls.httpsRedirect is not supported; ignored`);
    for (const k of ["serverCertificate", "privateKey", "caCertificates", "subjectAltNames", "verifyCertificateSpki", "verifyCertificateHash"]) {
      if (tls?.[k] !== undefined) w(`${f}.tls.${k} is not supported (certificates come from credentialName Secrets); ignored`);
    }
    let mode: GatewayPortMode;
    const passthrough = tlsMode === "PASSTHROUGH" || tlsMode === "AUTO_PASSTHROUGH";
    if (protocol === "HTTP" || protocol === "HTTP2" || protocol === "GRPC" || protocol === "HTTP_PROXY") {
      // HTTP2/GRPC with a certificate: terminated, with h2 offered in ALPN.
      mode = passthrough ? "TLS_PASSTHROUGH" : credentialName !== "" ? "HTTPS" : "HTTP";
    } else if (protocol === "HTTPS") {
      if (passthrough) mode = "TLS_PASSTHROUGH";
      else if (credentialName !== "") mode = "HTTPS";
      else {
        w(`${f}: protocol HTTPS needs tls.credentialName (a kubernetes.io/tls Secret) or tls.mode PASSTHROUGH; server ignored`);
        return;
      }
    } else if (protocol === "TLS") {
      if (passthrough) mode = "TLS_PASSTHROUGH";
      else if (credentialName !== "") mode = "TLS_TERMINATE";
      else {
        w(`${f}: protocol TLS needs tls.mode PASSTHROUGH or tls.credentialName; server ignored`);
        return;
      }
    } else if (protocol === "TCP" || protocol === "MONGO" || protocol === "REDIS" || protocol === "MYSQL") {
      mode = "TCP";
    } else {
      w(`${f}.port.protocol ${JSON.stringify(s.port.protocol)}: expected HTTP, HTTPS, HTTP2, GRPC, TCP or TLS; server ignored`);
      return;
    }
    if (tlsMode === "ISTIO_MUTUAL") {
      w(`${f}.tls.mode ISTIO_MUTUAL needs Istio's own certificates; server ignored`);
      return;
    }
    if (tlsMode === "AUTO_PASSTHROUGH") w(`${f}.tls.mode AUTO_PASSTHROUGH is served as PASSTHROUGH (routed by SNI through tls routes)`);
    const clientCert = tlsMode === "MUTUAL" ? "require" : tlsMode === "OPTIONAL_MUTUAL" ? "optional" : "secret";
    const version = (field: string): string => {
      const v = tls?.[field];
      if (v === undefined || v === null) return "";
      if (typeof v === "string" && v.toUpperCase() in TLS_VERSIONS) return TLS_VERSIONS[v.toUpperCase()]!;
      w(`${f}.tls.${field} ${JSON.stringify(v)}: expected TLSV1_0..TLSV1_3 or TLS_AUTO; default used`);
      return "";
    };
    const ciphers = Array.isArray(tls?.cipherSuites)
      ? (tls!.cipherSuites as unknown[]).filter((c): c is string => typeof c === "string").map((c) => CIPHER_NAMES[c] ?? c).join(":")
      : "";
    const hosts: { host: string; namespace: string }[] = [];
    for (const h of Array.isArray(s.hosts) ? s.hosts : []) {
      if (typeof h !== "string" || h.trim() === "") continue;
      const slash = h.indexOf("/");
      const nsPart = slash >= 0 ? h.slice(0, slash) : "*";
      const host = (slash >= 0 ? h.slice(slash + 1) : h).trim().toLowerCase();
      hosts.push({ host, namespace: nsPart === "." ? ns : nsPart });
    }
    if (hosts.length === 0) {
      w(`${f}.hosts is empty; server ignored (use "*" for every host)`);
      return;
    }
    const name = typeof s.name === "string" ? s.name : typeof s.port.name === "string" ? s.port.name : "";
    out.push({
      ref: Object.freeze({
        gateway: key,
        index: i,
        name,
        protocol,
        hosts: Object.freeze(hosts.map((h) => (h.namespace === "*" ? h.host : `${h.namespace}/${h.host}`))),
        tlsMode: tlsMode || (credentialName ? "SIMPLE" : ""),
        credentialName,
      }),
      gatewayNamespace: ns,
      port: number,
      mode,
      hosts,
      credentialName,
      clientCert,
      minVersion: version("minProtocolVersion"),
      maxVersion: version("maxProtocolVersion"),
      ciphers,
      h2: protocol === "HTTP2" || protocol === "GRPC",
    });
  });
  return out;
}
