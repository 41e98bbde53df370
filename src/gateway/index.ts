// Public surface of the edge gateway's data plane: createGateway and its option/result types,
// and the pure pieces (head parsing, routing decisions, SNI) for tests and benchmarks.
export { createGateway, type Gateway, type GatewayOptions, type GatewayStats } from "./gateway.ts";
export { unboundListeners, BIND_RETRY_MS, type GatewayListenerInfo } from "./listeners.ts";
export { selectRoute, selectVirtualHost, pickDestination, requestMatches } from "./route.ts";
export { parseRequestHead, findHeadEnd, RequestHead, PARSE_OK, PARSE_H2 } from "./http/request-head.ts";
export { readClientHelloSni } from "./sni.ts";
