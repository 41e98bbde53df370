// Public surface of compile: the pure store -> RouteTable step and its option types.
export { compile, createCompiler, DEFAULT_AFFINITY_TIMEOUT_SECONDS, type CompileOptions, type Compiler } from "./compile.ts";
export { isProxied, SERVICE_PROXY_NAME_LABEL, type ServiceFilterMode } from "./filter.ts";
export { policyFor } from "./policy.ts";
export { SERVICE_NAME_LABEL } from "./endpoints.ts";
export { compileCni, type CniCompileOptions } from "./cni.ts";
export { formatIPv4, parseCidr4, parseIPv4, type Cidr4 } from "./cidr.ts";
