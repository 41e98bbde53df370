// The one error type of the Kubernetes source. Messages name what failed and for which target.

export class KubeSourceError extends Error {
  override readonly name = "KubeSourceError";
  constructor(
    message: string,
    /** HTTP status when the API answered, 0 for connection-level failures. */
    readonly status = 0,
    /** Status.reason from the API ("Expired", "NotFound", ...). */
    readonly reason = "",
  ) {
    super(message);
  }
}

/** True for "410 Gone": the resourceVersion or continue token is too old, relist. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeSourceError && err.status === 410;
}

/** Build an error from a non-2xx API response (reads its Status body when there is one). */
export async function apiError(what: string, res: Response): Promise<KubeSourceError> {
  let reason = "";
  let message = res.statusText;
  try {
    const body = (await res.json()) as { reason?: string; message?: string };
    reason = body.reason ?? "";
    message = body.message ?? message;
  } catch {
    // not a Status document
  }
  return new KubeSourceError(`${what}: HTTP ${res.status} ${reason} ${message}`.trim(), res.status, reason);
}
