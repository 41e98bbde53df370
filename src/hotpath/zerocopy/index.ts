// Public surface of the zero-copy (splice(2)) engine: an experiment toward the TCP bulk path.
export { createZeroCopyEngine, ZC_PIPE_BYTES } from "./engine.ts";
export type { ZeroCopyDone, ZeroCopyDoneInfo, ZeroCopyEngine, ZeroCopyEngineOptions, ZeroCopyReason } from "./engine.ts";
export { socketFd } from "./socket-fd.ts";
export { createZeroCopyIfSupported, zeroCopyFdBudget, ZC_MAX_PAIRS, type FdBudget } from "./setup.ts";
