// Public surface of the control plane. Other modules import from here only.
export * from "./table.ts";
export * from "./objects.ts";
export * from "./store.ts";
export * from "./config/index.ts";
export * from "./compile/index.ts";
export * from "./clock.ts";
export * from "./runner.ts";
export * from "./publisher.ts";
export * from "./manifest/index.ts";
export * from "./kube/index.ts";
export * from "./gateway/index.ts";
