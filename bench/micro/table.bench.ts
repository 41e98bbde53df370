// Route table lookup by service port key (what a new connection does once), hit and miss, on the
// 10k-service table, against a plain Map with the same keys measured in the same process.

import { do_not_optimize } from "mitata";
import { compile } from "../../src/control/index.ts";
import { emit, jsonMode, nano, nsRatio, runScenarios } from "./harness.ts";
import { syntheticStore } from "./synthetic.ts";

const table = compile(syntheticStore({ services: 10_000, endpointsPerService: 10 }).snapshot(), { serviceFilterMode: "FilterIfLabelExists" }, 1, 0);
const keys = table.ports.map((p) => p.key);
const missing = keys.map((k) => k.replace(":80/", ":81/"));
const map = new Map(table.ports.map((p) => [p.key, p]));
const MASK = 1023;
let i = 0;

nano("ref: Map.get hit", () => do_not_optimize(map.get(keys[(i = (i + 1) & MASK)]!)));
nano("ref: Map.get miss", () => do_not_optimize(map.get(missing[(i = (i + 1) & MASK)]!)));
nano("table lookup hit (byKey)", () => do_not_optimize(table.byKey[keys[(i = (i + 1) & MASK)]!]));
nano("table lookup miss (byKey)", () => do_not_optimize(table.byKey[missing[(i = (i + 1) & MASK)]!]));

const stats = await runScenarios();
emit([
  nsRatio("table.lookup_hit", stats, "table lookup hit (byKey)", "ref: Map.get hit"),
  nsRatio("table.lookup_miss", stats, "table lookup miss (byKey)", "ref: Map.get miss"),
]);
if (!jsonMode) process.exit(0);
