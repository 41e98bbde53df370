/** One error type for the module: names the command that failed and carries iptables' words. */
export class IptablesError extends Error {
  override readonly name = "IptablesError";
  constructor(
    readonly command: string,
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${code}): ${stderr.trim() || "no message"}`);
  }
}
