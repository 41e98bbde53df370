/** One error type for host set-up: says what failed and how to fix it where we know. */
export class HostError extends Error {
  override readonly name = "HostError";
}
