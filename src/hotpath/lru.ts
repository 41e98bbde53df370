// An intrusive least-recently-used list: the entries carry their own links, so moving one to the
// young end on every datagram is a few pointer writes and allocates nothing. Used for UDP flow
// tables, whose bound is kept by evicting the oldest idle flow, and whose idle sweep walks from
// the old end and stops at the first flow still in use.

export interface LruEntry {
  lruPrev: LruEntry | null;
  lruNext: LruEntry | null;
}

export class LruList<T extends LruEntry> {
  /** The least recently used entry. */
  oldest: T | null = null;
  newest: T | null = null;
  size = 0;

  /** Adds `e` (not in any list) as the newest. */
  push(e: T): void {
    e.lruPrev = this.newest;
    e.lruNext = null;
    if (this.newest === null) this.oldest = e;
    else this.newest.lruNext = e;
    this.newest = e;
    this.size++;
  }

  /** Removes `e`, which must be in this list. */
  remove(e: T): void {
    const prev = e.lruPrev;
    const next = e.lruNext;
    if (prev === null) this.oldest = next as T | null;
    else prev.lruNext = next;
    if (next === null) this.newest = prev as T | null;
    else next.lruPrev = prev;
    e.lruPrev = null;
    e.lruNext = null;
    this.size--;
  }

  /** Marks `e` (in this list) as just used. */
  touch(e: T): void {
    if (this.newest === e) return;
    this.remove(e);
    this.push(e);
  }
}
