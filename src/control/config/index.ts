// Public surface of the configuration module (EdgeMesh-compatible agent config).
export * from "./types.ts";
export { defaultConfig, detectRunningMode, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, DEFAULT_CONFIG_PATH } from "./defaults.ts";
export type { Env } from "./defaults.ts";
export { ConfigError } from "./errors.ts";
export type { ConfigProblem } from "./errors.ts";
export { resolveConfig } from "./validate.ts";
export type { ResolveOptions } from "./validate.ts";
export { loadConfig, parseDocument, requireNodeName } from "./load.ts";
export type { ConfigSource } from "./load.ts";
