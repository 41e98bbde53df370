import { describe, expect, test } from "bun:test";
import { COMMAND_HELP, effectiveMetricConfig, parseArgs, USAGE, UsageError } from "../../src/main/args.ts";

describe("command line", () => {
  test("agent needs --config and takes it in both spellings", () => {
    expect(parseArgs(["agent", "--config", "/etc/a.yaml"])).toEqual({ cmd: "agent", config: "/etc/a.yaml" });
    expect(parseArgs(["agent", "--config=/etc/b.yaml"])).toEqual({ cmd: "agent", config: "/etc/b.yaml" });
    expect(() => parseArgs(["agent"])).toThrow("agent needs --config FILE");
  });

  test("dev has loopback defaults and accepts port 0", () => {
    expect(parseArgs(["dev"])).toEqual({
      cmd: "dev",
      manifests: undefined,
      admin: "127.0.0.1:10551",
      dns: "127.0.0.1:5353",
      config: undefined,
    });
    const dev = parseArgs(["dev", "--manifests", "m", "--admin", "127.0.0.1:0", "--dns", "127.0.0.1:0"]);
    expect(dev).toMatchObject({ manifests: "m", admin: "127.0.0.1:0", dns: "127.0.0.1:0" });
  });

  test("an unknown flag or command names itself", () => {
    expect(() => parseArgs(["dev", "--admn", "x"])).toThrow('unknown flag --admn for "dev"');
    expect(() => parseArgs(["proxy"])).toThrow('unknown command "proxy"');
    expect(() => parseArgs(["dev", "--dns"])).toThrow(UsageError);
  });

  test("status reads the admin address and --json", () => {
    expect(parseArgs(["status", "--json"])).toEqual({ cmd: "status", admin: "127.0.0.1:10551", json: true });
  });

  test("EdgeMesh's --config-file is --config, in both spellings and for every command that takes a file", () => {
    expect(parseArgs(["agent", "--config-file", "/etc/a.yaml"])).toEqual({ cmd: "agent", config: "/etc/a.yaml" });
    expect(parseArgs(["agent", "--config-file=/etc/b.yaml"])).toEqual({ cmd: "agent", config: "/etc/b.yaml" });
    expect(parseArgs(["validate", "--config-file", "f.yaml"])).toEqual({ cmd: "validate", config: "f.yaml", json: false });
    expect(parseArgs(["dev", "--config-file", "f.yaml"])).toMatchObject({ cmd: "dev", config: "f.yaml" });
  });

  test("help: top level, per command in three spellings, and an unknown topic is an error", () => {
    for (const argv of [[], ["--help"], ["-h"], ["help"]]) expect(parseArgs(argv)).toEqual({ cmd: "help", topic: undefined });
    for (const argv of [["agent", "--help"], ["agent", "-h"], ["help", "agent"], ["agent", "--bogus", "--help"]]) {
      expect(parseArgs(argv)).toEqual({ cmd: "help", topic: "agent" });
    }
    expect(() => parseArgs(["help", "proxy"])).toThrow('no help for unknown command "proxy"');
  });

  test("--version anywhere, and the usage names every command", () => {
    for (const argv of [["--version"], ["-v"], ["version"], ["agent", "--version"]]) expect(parseArgs(argv)).toEqual({ cmd: "version" });
    for (const cmd of Object.keys(COMMAND_HELP)) {
      expect(USAGE).toContain(`edgemesh ${cmd}`);
      expect(COMMAND_HELP[cmd as keyof typeof COMMAND_HELP].startsWith(`edgemesh ${cmd}`)).toBe(true);
    }
  });

  test("validate needs a file; a usage error carries its command for the help that follows", () => {
    expect(parseArgs(["validate", "--config", "f.yaml", "--json"])).toEqual({ cmd: "validate", config: "f.yaml", json: true });
    let err: unknown;
    try {
      parseArgs(["validate"]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toBe("validate needs --config FILE");
    expect((err as UsageError).topic).toBe("validate");
    expect(() => parseArgs(["--config", "x"])).toThrow("unknown flag --config (flags follow the command)");
  });
  test("--metrics-bind-address / --metrics-port turn the metrics listener on over metricConfig; bad values name the flag", () => {
    expect(parseArgs(["agent", "--config", "a.yaml", "--metrics-bind-address=10.0.0.5", "--metrics-port", "9999"])).toEqual({ cmd: "agent", config: "a.yaml", metricsBindAddress: "10.0.0.5", metricsPort: 9999 });
    expect(parseArgs(["gateway", "--config", "g.yaml", "--metrics-bind-address", "fd00::5"])).toEqual({ cmd: "gateway", config: "g.yaml", metricsBindAddress: "fd00::5" });
    expect(() => parseArgs(["agent", "--config", "a.yaml", "--metrics-bind-address", "$(HOST_IP)"])).toThrow('--metrics-bind-address: expected an IP address, got "$(HOST_IP)"');
    expect(() => parseArgs(["agent", "--config", "a.yaml", "--metrics-port", "99999"])).toThrow("--metrics-port: expected a port 0-65535");
    expect(() => parseArgs(["dev", "--metrics-port", "9999"])).toThrow('unknown flag --metrics-port for "dev"');
    const mc = { enable: false, bindAddress: "0.0.0.0", port: 9999 };
    expect(effectiveMetricConfig(mc, {})).toEqual({ ...mc, key: "modules.edgeTunnel.metricConfig.port" });
    expect(effectiveMetricConfig(mc, { metricsBindAddress: "10.0.0.5" })).toEqual({ enable: true, bindAddress: "10.0.0.5", port: 9999, key: "modules.edgeTunnel.metricConfig.port" });
    expect(effectiveMetricConfig({ ...mc, enable: true }, { metricsPort: 9100 })).toEqual({ enable: true, bindAddress: "0.0.0.0", port: 9100, key: "--metrics-port" });
  });
});
