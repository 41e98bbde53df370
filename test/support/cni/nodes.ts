// Node objects for Edge CNI tests: the manifest-folder form of what the API would list
// (spec.podCIDR and the InternalIP the LAN rule reads).
import type { NodeSpec } from "../netns.ts";

export function nodeYaml(n: Pick<NodeSpec, "name" | "ip" | "podCidr">): string {
  return `apiVersion: v1
kind: Node
metadata: { name: ${n.name} }
spec: { podCIDR: ${n.podCidr}, podCIDRs: ["${n.podCidr}"] }
status:
  addresses:
  - { type: InternalIP, address: ${n.ip} }
  - { type: Hostname, address: ${n.name} }
`;
}
