// Regenerates test/unit/fixtures/iptables-save-edgemesh-{nft,legacy}.txt: EdgeMesh's leftovers and
// kube-proxy's iptables-mode rules applied with the real iptables (both backends) inside a
// throwaway network namespace, then read back with iptables-save. Run as root:
//   bun test/support/testbed/make-leftover-fixtures.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createScratchNamespace } from "../netns.ts";
import { edgemeshLeftoverCommands, kubeProxyCommands, LEFTOVER_SERVICES } from "./edgemesh-leftovers.ts";

const out = join(import.meta.dir, "../../unit/fixtures");
for (const backend of ["nft", "legacy"] as const) {
  const ns = await createScratchNamespace(`fix${backend}`);
  try {
    const bin = `iptables-${backend}`;
    const kube = kubeProxyCommands("10.244.0.0/16", [
      { name: "default/legacy:http", clusterIP: "10.96.0.30", port: 80, endpoint: "10.10.0.11:8081", svcChain: "KUBE-SVC-LEGACYHTTP4XQ2Z7K", sepChain: "KUBE-SEP-LEGACYEP5M3TQ9WB" },
    ]);
    for (const args of [...kube, ...edgemeshLeftoverCommands("169.254.96.16", LEFTOVER_SERVICES)]) await ns.must([bin, ...args]);
    const save = (await ns.must([`${bin}-save`])).stdout;
    // Timestamps in the comment lines would make every regeneration a diff.
    writeFileSync(join(out, `iptables-save-edgemesh-${backend}.txt`), save.replace(/ on \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}/g, ""));
  } finally {
    await ns.destroy();
  }
}
console.log("fixtures written to", out);
