// Public surface of the manifest-folder source.
export { createManifestSource, type ManifestSource, type ManifestSourceOptions } from "./source.ts";
export { parseManifest, type ManifestError, type ParsedObject, type ParseResult } from "./parse.ts";
export { isPeerManifest, PEER_MANIFEST_PREFIX, peerManifestFile, peerManifestYaml, writePeerManifest } from "./publish.ts";
