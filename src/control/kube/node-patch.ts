// The one write the agent makes to the Kubernetes API: a JSON merge patch of its own Node's
// annotations (secure mode publishes the tunnel's peer ID there). Sent through our KubeFetch, so
// the connection's TLS settings and credentials apply as they do for the watches.

import { apiError, KubeSourceError } from "./errors.ts";
import type { KubeFetch } from "./fetch-tls.ts";

export const MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json";

/** The RBAC rule an agent needs for patchNodeAnnotations, for error messages. */
export const NODE_PATCH_PERMISSION = 'nodes "patch" (apiGroups [""], resources ["nodes"], verbs ["patch"])';

/**
 * Merge `annotations` into Node `name` (a null value removes a key). Resolves with the Node's new
 * resourceVersion; rejects with a KubeSourceError carrying the HTTP status (403: RBAC forbids it,
 * 404: no such Node, 0: the API could not be reached).
 */
export async function patchNodeAnnotations(
  f: KubeFetch,
  name: string,
  annotations: Record<string, string | null>,
  signal?: AbortSignal,
): Promise<string> {
  const path = `/api/v1/nodes/${encodeURIComponent(name)}`;
  let res: Response;
  try {
    res = await f.request(path, {
      method: "PATCH",
      body: JSON.stringify({ metadata: { annotations } }),
      headers: { "content-type": MERGE_PATCH_CONTENT_TYPE },
      signal,
    });
  } catch (err) {
    throw new KubeSourceError(`PATCH ${path} on ${f.server}: ${(err as Error).message}`);
  }
  if (res.status < 200 || res.status > 299) throw await apiError(`PATCH ${path}`, res);
  const node = (await res.json().catch(() => ({}))) as { metadata?: { resourceVersion?: string } };
  return node.metadata?.resourceVersion ?? "";
}
