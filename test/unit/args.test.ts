import { describe, expect, test } from "bun:test";
import { parseArgs, UsageError } from "../../src/main/args.ts";

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
});
