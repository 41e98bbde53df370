// Public surface of the gateway's control plane: the GatewayTable types, compileGateway(), its
// publisher, NIC address selection and polling, and the pure host helpers the data plane uses.
export * from "./types.ts";
export { compileGateway, EMPTY_GATEWAY_TABLE, type GatewayCompileOptions } from "./compile.ts";
export { createGatewayPublisher, type GatewayPublisher, type GatewayPublisherOptions } from "./publisher.ts";
export { selectAddresses, type InterfaceList, type NicSelection, type SelectedAddresses } from "./nic.ts";
export { createNicSource, staticAddresses, NIC_POLL_INTERVAL_MS, type AddressSource, type NicSourceOptions } from "./nic-source.ts";
export { normalizeHost, isIpHost, lookupHost, hostCovers } from "./hosts.ts";
export { stringMatches, compileStringMatch, parseDuration, MatchError } from "./match.ts";
export { parseTlsSecret, type SecretTls, type SecretResult } from "./secret.ts";
export { resolveService } from "./destinations.ts";
export { DEFAULT_RETRIES } from "./virtualservice.ts";
