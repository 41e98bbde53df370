// Service sessionAffinity: ClientIP, as kube-proxy does it: a client IP sticks to the endpoint it
// was last sent to while it keeps coming back within timeoutSeconds of its last connection.
// The table lives outside the frozen RouteTable, one per service port key, and survives table
// versions; an entry whose endpoint left the port is ignored and replaced on the next pick.

export interface AffinityEntry {
  /** "ip:port" of the endpoint. */
  address: string;
  /** Clock ms of the last connection of this client. */
  lastUsed: number;
}

export class AffinityTable {
  readonly #entries = new Map<string, AffinityEntry>();

  /** The sticky endpoint address for `clientIp`, or "" when none or expired. */
  lookup(clientIp: string, now: number, timeoutMs: number): string {
    const entry = this.#entries.get(clientIp);
    if (entry === undefined) return "";
    if (now - entry.lastUsed > timeoutMs) {
      this.#entries.delete(clientIp);
      return "";
    }
    entry.lastUsed = now;
    return entry.address;
  }

  record(clientIp: string, address: string, now: number): void {
    const entry = this.#entries.get(clientIp);
    if (entry === undefined) this.#entries.set(clientIp, { address, lastUsed: now });
    else {
      entry.address = address;
      entry.lastUsed = now;
    }
  }

  /** Drop expired entries so the table does not grow with every client ever seen. */
  sweep(now: number, timeoutMs: number): void {
    for (const [ip, entry] of this.#entries) if (now - entry.lastUsed > timeoutMs) this.#entries.delete(ip);
  }

  get size(): number {
    return this.#entries.size;
  }
}
