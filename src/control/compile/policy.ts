// LB policy of a Service from the Istio DestinationRule with the same name and namespace, read
// the way EdgeMesh reads it (pkg/loadbalancer: getPolicyName / getConsistentHashKey) but never
// trusting the shape: EdgeMesh dereferenced nil trafficPolicy / loadBalancer fields and crashed
// (kubeedge/edgemesh#288, #371, #463 with simple: PASSTHROUGH). Here every bad or partial rule
// falls back to ROUND_ROBIN with one warning that names the rule and the offending field.

import type { LbPolicy } from "../table.ts";
import type { KubeObject } from "../objects.ts";

export const ROUND_ROBIN: LbPolicy = Object.freeze({ kind: "ROUND_ROBIN" });
export const RANDOM: LbPolicy = Object.freeze({ kind: "RANDOM" });
export const CONSISTENT_HASH_SOURCE_IP: LbPolicy = Object.freeze({ kind: "CONSISTENT_HASH_SOURCE_IP" });

const ISTIO_GROUP = "networking.istio.io/";

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The policy for a service; `rule` is the DestinationRule named like it, if any. */
export function policyFor(rule: KubeObject | undefined, warn: (msg: string) => void): LbPolicy {
  if (rule === undefined) return ROUND_ROBIN;
  const name = `DestinationRule ${rule.metadata.namespace ?? ""}/${rule.metadata.name}`;
  const fallback = (why: string): LbPolicy => {
    warn(`${name}: ${why}; using ROUND_ROBIN`);
    return ROUND_ROBIN;
  };
  if (typeof rule.apiVersion === "string" && rule.apiVersion !== "" && !rule.apiVersion.startsWith(ISTIO_GROUP)) {
    return fallback(`apiVersion ${JSON.stringify(rule.apiVersion)} is not ${ISTIO_GROUP}*`);
  }
  const spec = rule.spec;
  if (!isRecord(spec)) return fallback("spec is missing or not an object");
  const traffic = spec.trafficPolicy;
  if (!isRecord(traffic)) return fallback("spec.trafficPolicy is missing or not an object");
  const lb = traffic.loadBalancer;
  if (!isRecord(lb)) return fallback("spec.trafficPolicy.loadBalancer is missing or not an object");

  const hasSimple = lb.simple !== undefined && lb.simple !== null;
  const hasHash = lb.consistentHash !== undefined && lb.consistentHash !== null;
  // In Istio's API these are one oneof: a rule with both does not even decode.
  if (hasSimple && hasHash) return fallback("loadBalancer sets both simple and consistentHash");
  if (hasSimple) {
    if (lb.simple === "ROUND_ROBIN") return ROUND_ROBIN;
    if (lb.simple === "RANDOM") return RANDOM;
    return fallback(`loadBalancer.simple ${JSON.stringify(lb.simple)} is not supported (ROUND_ROBIN, RANDOM)`);
  }
  if (hasHash) return hashPolicy(lb.consistentHash, fallback);
  return fallback("loadBalancer has neither simple nor consistentHash");
}

function hashPolicy(hash: unknown, fallback: (why: string) => LbPolicy): LbPolicy {
  if (!isRecord(hash)) return fallback("loadBalancer.consistentHash is not an object");
  const header = hash.httpHeaderName;
  const sourceIp = hash.useSourceIp;
  const keys = ["httpHeaderName", "useSourceIp", "httpCookie", "httpQueryParameterName"].filter(
    (k) => hash[k] !== undefined && hash[k] !== null,
  );
  if (keys.length > 1) return fallback(`consistentHash sets more than one hash key (${keys.join(", ")})`);
  if (header !== undefined && header !== null) {
    if (typeof header !== "string" || header.trim() === "") {
      return fallback("consistentHash.httpHeaderName must be a non-empty string");
    }
    // HTTP header names are case-insensitive; the hot path compares lower-cased names.
    return Object.freeze({ kind: "CONSISTENT_HASH_HEADER", header: header.trim().toLowerCase() });
  }
  if (sourceIp !== undefined && sourceIp !== null) {
    if (sourceIp === true) return CONSISTENT_HASH_SOURCE_IP;
    return fallback(`consistentHash.useSourceIp is ${JSON.stringify(sourceIp)}, not true`);
  }
  if (keys.length === 1) return fallback(`consistentHash.${keys[0]} is not supported (httpHeaderName, useSourceIp)`);
  return fallback("consistentHash has no hash key");
}
