import { describe, expect, test } from "bun:test";
import { COMMAND_HELP, parseArgs, USAGE, UsageError } from "../../src/main/args.ts";

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
});
