// Tunables of the Edge CNI packet pump, with units in their names.

/** sizeof(struct virtio_net_hdr), in front of every packet when the device offloads. */
export const VNET_HDR_BYTES = 10;
/** The largest IP packet a frame can hold: IPv4's 16-bit total length (IPv6: 40 + 65535). */
export const MAX_IP_PACKET_BYTES = 65535 + 40;
/** The largest frame on a CNI stream: an optional virtio header and one IP packet. */
export const MAX_FRAME_BYTES = VNET_HDR_BYTES + MAX_IP_PACKET_BYTES;

/**
 * Bytes per outbound slab, per peer. Packets are read from the TUN straight into the slab of
 * the peer they are for and sent as views of it; a slab is never rewritten, a full one is
 * replaced (one allocation per slab, none per packet). 1 MiB holds 15 offload superpackets;
 * pages a read never reached are never touched (slabs are not zero-filled).
 */
export const SLAB_BYTES_OFFLOAD = 1024 * 1024;
/** Without offload packets are at most an MTU: a smaller slab suffices. */
export const SLAB_BYTES_PLAIN = 256 * 1024;
/**
 * Bytes that may wait per peer: our slab's unsent part plus what the stream still holds while its
 * connection wants a 'drain'. 2 MiB is 16 ms at 1 Gbit/s: enough that a bulk flow rides out the
 * tunnel's bursts instead of losing 64 KiB superpackets, bounded so a stalled peer holds little.
 */
export const PEER_QUEUE_BYTES = 2 * 1024 * 1024;
/** A peer's batch goes out once this much waits, without waiting for the end of the pass. */
export const FLUSH_BYTES = 256 * 1024;
/**
 * Packets read per wake-up of the TUN watcher before other events get a turn (the watcher
 * wakes us again at once if more wait).
 */
export const MAX_PACKETS_PER_WAKE = 512;

/** After a failed stream open, packets to that peer are dropped for 1 s, doubling to 30 s. */
export const OPEN_BACKOFF_INITIAL_MS = 1000;
export const OPEN_BACKOFF_MAX_MS = 30_000;

/** Peers with their own metric series; later ones share the overflow series. */
export const PEER_LABELS_MAX = 256;
