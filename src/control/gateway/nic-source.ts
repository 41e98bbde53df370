// NIC addresses as a watched input. Polls the interface list (getifaddrs through
// os.networkInterfaces) on the injected clock and reports a change of the selected set; the
// gateway publisher recompiles on it, so an address that appears gains listeners and one that
// leaves loses them.
//
// Why a poll and not netlink: Bun has no netlink socket, so netlink means an FFI socket with
// our own message parsing (or an `ip monitor` child process to supervise); a getifaddrs call is
// a few microseconds, and a 1 s poll meets "a NIC that appears gains its listeners" with nothing
// to keep alive. Address changes on an edge node are rare (DHCP, a cable plugged in).

import type { Clock } from "../clock.ts";
import { selectAddresses, type InterfaceList, type NicSelection, type SelectedAddresses } from "./nic.ts";

/** Default poll interval: a new address gets its listeners within about this long. */
export const NIC_POLL_INTERVAL_MS = 1000;

export interface AddressSource {
  /** The selected addresses now (sorted). */
  current(): readonly string[];
  /** Called with the new list whenever it changes. */
  subscribe(listener: (addresses: readonly string[]) => void): () => void;
  /** Re-read now (also what the timer does). */
  poll(): void;
  stop(): void;
}

export interface NicSourceOptions {
  selection: NicSelection;
  /** os.networkInterfaces, injectable for tests. */
  interfaces: () => InterfaceList;
  clock: Clock;
  intervalMs?: number;
  /** NICs named in the config that are missing (reported when the set of missing ones changes). */
  onMissing?: (names: readonly string[]) => void;
}

export function createNicSource(o: NicSourceOptions): AddressSource {
  const listeners = new Set<(a: readonly string[]) => void>();
  const interval = o.intervalMs ?? NIC_POLL_INTERVAL_MS;
  let selected: SelectedAddresses = read();
  let missingKey = selected.missing.join(",");
  if (selected.missing.length > 0) o.onMissing?.(selected.missing);
  let timer: unknown;
  let stopped = false;

  function read(): SelectedAddresses {
    try {
      return selectAddresses(o.interfaces(), o.selection);
    } catch {
      // getifaddrs failing is transient at worst; keep what we had.
      return selected ?? { addresses: [], missing: [] };
    }
  }

  function poll(): void {
    const next = read();
    const key = next.missing.join(",");
    if (key !== missingKey) {
      missingKey = key;
      if (next.missing.length > 0) o.onMissing?.(next.missing);
    }
    if (same(next.addresses, selected.addresses)) return;
    selected = next;
    for (const l of Array.from(listeners)) l(next.addresses);
  }

  function schedule(): void {
    if (stopped) return;
    timer = o.clock.setTimeout(() => {
      poll();
      schedule();
    }, interval);
  }
  schedule();

  return {
    current: () => selected.addresses,
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    poll,
    stop() {
      stopped = true;
      if (timer !== undefined) o.clock.clearTimeout(timer);
    },
  };
}

/** A fixed list (dev mode: 127.0.0.1). */
export function staticAddresses(addresses: readonly string[]): AddressSource {
  const list = Object.freeze([...addresses]);
  return { current: () => list, subscribe: () => () => {}, poll() {}, stop() {} };
}

function same(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
