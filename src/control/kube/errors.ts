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

/**
 * True when a request got no answer from the API: a transport failure (refused, reset, timed
 * out, name not resolved) or a gateway in front of it saying the API is not there (502-504).
 * Any other status, and an answer that did not parse, mean the API is there.
 */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof KubeSourceError) return err.status === 502 || err.status === 503 || err.status === 504;
  return !(err instanceof SyntaxError);
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
