// Public surface of the control plane. Other modules import from here only.
export * from "./table.ts";
export * from "./objects.ts";
export * from "./store.ts";
export * from "./config/index.ts";
