// Public surface of the zero-copy (splice(2)) engine: the TCP bulk path. tcp/splice.ts hands a
// connection over once ZC_ADOPT_AFTER_BYTES went through JS; the agent creates the engine with
// createZeroCopyIfSupported and sizes it with zeroCopyFdBudget.
export { createZeroCopyEngine, ZC_PIPE_BYTES } from "./engine.ts";
export type { ZeroCopyDone, ZeroCopyDoneInfo, ZeroCopyEngine, ZeroCopyEngineOptions, ZeroCopyReason } from "./engine.ts";
export { socketFd } from "./socket-fd.ts";
export { createZeroCopyIfSupported, zeroCopyFdBudget, ZC_MAX_PAIRS, type FdBudget } from "./setup.ts";
export { compileNativeLoop, type NativeLoop } from "./native/compile.ts";
