// Public surface of the benchmark gate logic (pure: no processes, no files).
export * from "./types.ts";
export { parseFloors, FloorsError } from "./floors.ts";
export { evaluate, gatedNumber, meets, type Verdict } from "./evaluate.ts";
export { renderTable, num } from "./render.ts";
export { summarize, ratioResult, median, combineProcesses } from "./stats.ts";
export { lastJson, normalizeExternal } from "./external.ts";
export { retryTargets, type RetryTarget } from "./retry.ts";
