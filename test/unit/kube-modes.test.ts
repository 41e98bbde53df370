import { describe, expect, test } from "bun:test";
import { defaultConfig } from "../../src/control/config/index.ts";
import { resolveMode } from "../../src/control/kube/index.ts";

describe("resolveMode (EdgeMesh's Manual / Cloud / Edge rules)", () => {
  test("master or kubeConfig set means manual, whatever the environment", () => {
    const env = { KUBERNETES_PORT: "tcp://10.96.0.1:443" };
    expect(resolveMode({ master: "https://1.2.3.4:6443" }, env)).toMatchObject({ mode: "manual", server: "https://1.2.3.4:6443", kubeConfigPath: undefined });
    expect(resolveMode({ kubeConfig: "/root/.kube/config" }, env)).toMatchObject({ mode: "manual", server: undefined, kubeConfigPath: "/root/.kube/config" });
    expect(resolveMode({ master: "https://m:6443", kubeConfig: "/k" }, {})).toMatchObject({ mode: "manual", server: "https://m:6443", kubeConfigPath: "/k" });
  });

  test("KUBERNETES_PORT in the environment means cloud: in-cluster address, CA and token", () => {
    const c = resolveMode({}, { KUBERNETES_PORT: "tcp://10.96.0.1:443", KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" });
    expect(c.mode).toBe("cloud");
    expect(c.server).toBe("https://10.96.0.1:443");
    expect(c.tls?.caFile).toBe("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    expect(c.tokenFile).toBe("/var/run/secrets/kubernetes.io/serviceaccount/token");
    expect(resolveMode({}, { KUBERNETES_PORT: "x", KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" }).server).toBe("https://[fd00::1]:6443");
  });

  test("otherwise edge: the MetaServer over plain http with JSON", () => {
    const c = resolveMode({ contentType: "application/vnd.kubernetes.protobuf" }, {});
    expect(c).toMatchObject({ mode: "edge", server: "http://127.0.0.1:10550", contentType: "application/json" });
    expect(c.tls).toBeUndefined();
    expect(c.tokenFile).toBeUndefined();
    expect(resolveMode({ metaServer: { server: "http://127.0.0.1:10551" } }, {}).server).toBe("http://127.0.0.1:10551");
  });

  test("edge with requireAuthorization switches to https and sends the service-account token", () => {
    const insecure = resolveMode({ metaServer: { security: { requireAuthorization: true, insecureSkipTLSVerify: true } } }, {});
    expect(insecure).toMatchObject({ mode: "edge", server: "https://127.0.0.1:10550", tls: { insecureSkipVerify: true } });
    expect(insecure.tokenFile).toBe("/var/run/secrets/kubernetes.io/serviceaccount/token");
    const verified = resolveMode({ metaServer: { security: { requireAuthorization: true, insecureSkipTLSVerify: false, tlsCaFile: "/ca", tlsCertFile: "/c", tlsPrivateKeyFile: "/k" } } }, {});
    expect(verified.tls).toEqual({ caFile: "/ca", certFile: "/c", keyFile: "/k" });
    const defaults = resolveMode({ metaServer: { security: { requireAuthorization: true, insecureSkipTLSVerify: false } } }, {});
    expect(defaults.tls).toEqual({ caFile: "/etc/edgemesh/metaserver/rootCA.crt", certFile: "/etc/edgemesh/metaserver/server.crt", keyFile: "/etc/edgemesh/metaserver/server.key" });
  });

  test("kubeAPIConfig.mode, when given, wins over the environment (EdgeMesh lets the file override it)", () => {
    expect(resolveMode({ mode: "EdgeMode" }, { KUBERNETES_PORT: "tcp://10.96.0.1:443" }).mode).toBe("edge");
    expect(resolveMode({ mode: "CloudMode" }, { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" })).toMatchObject({ mode: "cloud", server: "https://10.96.0.1:443" });
    expect(resolveMode({ mode: "ManualMode" }, {}).mode).toBe("cloud");
    expect(resolveMode({ mode: "EdgeMode", master: "http://m:8080" }, {}).mode).toBe("manual");
  });

  test("requireAuthorization without insecureSkipTLSVerify verifies with the CA and client certificate (EdgeMesh's default)", () => {
    expect(resolveMode({ metaServer: { security: { requireAuthorization: true } } }, {}).tls?.caFile).toBe("/etc/edgemesh/metaserver/rootCA.crt");
  });

  test("the config module's kubeAPIConfig feeds resolveMode as is", () => {
    const edgeEnv = {};
    expect(resolveMode(defaultConfig(edgeEnv).kubeAPIConfig, edgeEnv)).toMatchObject({ mode: "edge", server: "http://127.0.0.1:10550", contentType: "application/json" });
    const cloudEnv = { KUBERNETES_PORT: "tcp://10.96.0.1:443", KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
    expect(resolveMode(defaultConfig(cloudEnv).kubeAPIConfig, cloudEnv)).toMatchObject({ mode: "cloud", server: "https://10.96.0.1:443" });
  });
});
