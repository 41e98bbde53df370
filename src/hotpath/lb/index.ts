// Public surface of load balancing: pure decisions, tested without sockets.
export { createBalancer, type Balancer, type BalancerOptions } from "./balancer.ts";
export { buildRing, locate, partitionOf, type Ring, type RingConfig } from "./consistent.ts";
export { headEnd, headEndAfterAppend, headerValue } from "./http-head.ts";
export { AffinityTable } from "./affinity.ts";
export { pickRandom, pickRoundRobin, type RoundRobinCursor } from "./policies.ts";
