// What we keep of an API object. The store holds objects as the API sends them, minus the parts
// nothing in the agent reads and that dominate memory at scale: managedFields (often larger than
// the object), kubectl's last-applied annotation (a full copy of the object), and a Node's image
// list and volume lists (tens of KiB per node). Also fills in kind/apiVersion, which the real
// apiserver leaves out of list items for built-in types.

import type { KubeObject } from "../objects.ts";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

export function trimObject(obj: any, kind: string, apiVersion: string): KubeObject {
  if (!obj.kind) obj.kind = kind;
  if (!obj.apiVersion) obj.apiVersion = apiVersion;
  const meta = obj.metadata;
  if (meta) {
    if (meta.managedFields) delete meta.managedFields;
    if (meta.annotations && LAST_APPLIED in meta.annotations) {
      delete meta.annotations[LAST_APPLIED];
    }
  }
  if (kind === "Node" && obj.status) {
    delete obj.status.images;
    delete obj.status.volumesInUse;
    delete obj.status.volumesAttached;
  }
  return obj as KubeObject;
}
