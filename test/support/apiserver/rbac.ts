// RBAC for the stand-in apiserver (../apiserver.ts), as the real one decides it:
// - request attributes from method and path (k8s.io/apiserver endpoints/request/requestinfo.go):
//   fewer than three path parts, or /apis/{group}/{version} with nothing after, is a
//   non-resource request (discovery); GET on a collection is `list`, with watch=true `watch`,
//   on a named object `get`; PATCH `patch`, and so on;
// - rule matching (k8s.io/kubernetes pkg/apis/rbac/v1 evaluation_helpers.go): verbs, API groups,
//   resources ("*", "res/sub", "*/sub"), resourceNames, nonResourceURLs (exact or "prefix*");
// - subjects of ClusterRoleBindings: ServiceAccount (user system:serviceaccount:NS:NAME), User,
//   Group; the bootstrap role system:discovery bound to system:authenticated, as every cluster has;
// - denials as the apiserver writes them (responsewriters/errors.go forbiddenMessage + a Status
//   of reason Forbidden, code 403).
// Only ClusterRoles and ClusterRoleBindings: the agent's permissions are cluster-wide.

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface ClusterRole {
  kind: "ClusterRole";
  metadata: { name: string };
  rules?: PolicyRule[];
}

export interface ClusterRoleBinding {
  kind: "ClusterRoleBinding";
  metadata: { name: string };
  roleRef: { apiGroup?: string; kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string; apiGroup?: string }[];
}

export interface UserInfo {
  name: string;
  groups: string[];
}

export interface RequestAttributes {
  verb: string;
  resourceRequest: boolean;
  path: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

export interface Decision {
  allowed: boolean;
  /** The role and rule index that allowed it. */
  by?: string;
}

const VERBS: Record<string, string> = { POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" };

export function requestAttributes(method: string, pathname: string, query: URLSearchParams): RequestAttributes {
  const parts = pathname.split("/").filter(Boolean);
  const nonResource: RequestAttributes = { verb: method.toLowerCase(), resourceRequest: false, path: pathname, apiGroup: "", resource: "", subresource: "", namespace: "", name: "" };
  if (parts.length < 3 || (parts[0] !== "api" && parts[0] !== "apis")) return nonResource;
  let rest = parts.slice(1);
  let apiGroup = "";
  if (parts[0] === "apis") {
    if (rest.length < 3) return nonResource;
    apiGroup = rest[0]!;
    rest = rest.slice(1);
  }
  rest = rest.slice(1); // the version
  let namespace = "";
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1]!;
    rest = rest.slice(2);
  } else if (rest[0] === "namespaces" && rest.length === 2) {
    namespace = rest[1]!; // a Namespace object itself
  }
  const [resource = "", name = "", subresource = ""] = rest;
  let verb = VERBS[method] ?? method.toLowerCase();
  if (method === "GET" || method === "HEAD") {
    const watch = query.get("watch");
    verb = watch === "true" || watch === "1" ? "watch" : name ? "get" : "list";
  } else if (method === "DELETE" && !name) verb = "deletecollection";
  return { verb, resourceRequest: true, path: pathname, apiGroup, resource, subresource, namespace, name };
}

/** The bootstrap policy every cluster has: discovery for any authenticated user. */
export const SYSTEM_DISCOVERY: { role: ClusterRole; binding: ClusterRoleBinding } = {
  role: {
    kind: "ClusterRole",
    metadata: { name: "system:discovery" },
    rules: [{ verbs: ["get"], nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"] }],
  },
  binding: {
    kind: "ClusterRoleBinding",
    metadata: { name: "system:discovery" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:discovery" },
    subjects: [{ kind: "Group", name: "system:authenticated", apiGroup: "rbac.authorization.k8s.io" }],
  },
};

/** A service account's user as the token authenticator reports it. */
export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return { name: `system:serviceaccount:${namespace}:${name}`, groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"] };
}

export function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  if (!rule.verbs.includes("*") && !rule.verbs.includes(a.verb)) return false;
  if (!a.resourceRequest) {
    return (rule.nonResourceURLs ?? []).some((u) => u === "*" || u === a.path || (u.endsWith("*") && a.path.startsWith(u.slice(0, -1))));
  }
  const groups = rule.apiGroups ?? [];
  if (!groups.includes("*") && !groups.includes(a.apiGroup)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resources = rule.resources ?? [];
  const resourceOk = resources.some((r) => r === "*" || r === combined || (a.subresource !== "" && r === `*/${a.subresource}`));
  if (!resourceOk) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(a.name);
}

function subjectMatches(s: NonNullable<ClusterRoleBinding["subjects"]>[number], user: UserInfo): boolean {
  if (s.kind === "ServiceAccount") return user.name === `system:serviceaccount:${s.namespace ?? ""}:${s.name}`;
  if (s.kind === "User") return user.name === s.name;
  if (s.kind === "Group") return user.groups.includes(s.name);
  return false;
}

export interface Policy {
  roles: readonly ClusterRole[];
  bindings: readonly ClusterRoleBinding[];
}

/** Policy from a list of Kubernetes objects (e.g. rendered kustomize output); other kinds are skipped. */
export function policyFrom(objects: readonly { kind: string }[]): Policy {
  return {
    roles: [SYSTEM_DISCOVERY.role, ...(objects.filter((o) => o.kind === "ClusterRole") as ClusterRole[])],
    bindings: [SYSTEM_DISCOVERY.binding, ...(objects.filter((o) => o.kind === "ClusterRoleBinding") as ClusterRoleBinding[])],
  };
}

export function authorize(policy: Policy, user: UserInfo, a: RequestAttributes): Decision {
  for (const binding of policy.bindings) {
    if (binding.roleRef.kind !== "ClusterRole" || !(binding.subjects ?? []).some((s) => subjectMatches(s, user))) continue;
    const role = policy.roles.find((r) => r.metadata.name === binding.roleRef.name);
    const index = (role?.rules ?? []).findIndex((rule) => ruleAllows(rule, a));
    if (index >= 0) return { allowed: true, by: `${role!.metadata.name}#${index}` };
  }
  return { allowed: false };
}

/** The 403 body the apiserver sends for a denied request. */
export function forbiddenStatus(user: UserInfo, a: RequestAttributes) {
  let why: string;
  let message: string;
  const details: Record<string, string> = {};
  if (!a.resourceRequest) {
    why = `User "${user.name}" cannot ${a.verb} path "${a.path}"`;
    message = `forbidden: ${why}`;
  } else {
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    why = `User "${user.name}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ` + (a.namespace ? `in the namespace "${a.namespace}"` : "at the cluster scope");
    const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
    message = a.name ? `${qualified} "${a.name}" is forbidden: ${why}` : `${qualified} is forbidden: ${why}`;
    if (a.name) details.name = a.name;
    details.group = a.apiGroup;
    details.kind = a.resource;
  }
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason: "Forbidden", details, code: 403 };
}

/** "verb group/resource" for each rule of a role, expanded (the unit the RBAC proof compares). */
export function grantsOf(role: ClusterRole): string[] {
  const out: string[] = [];
  for (const rule of role.rules ?? []) {
    for (const verb of rule.verbs) {
      for (const group of rule.apiGroups ?? []) for (const res of rule.resources ?? []) out.push(grant(verb, group, res));
      for (const url of rule.nonResourceURLs ?? []) out.push(`${verb} ${url}`);
    }
  }
  return [...new Set(out)].sort();
}

export function grant(verb: string, group: string, resource: string): string {
  return `${verb} ${group || "core"}/${resource}`;
}
