// The simple policies as pure functions over (endpoint count, tried indexes, state): no sockets,
// no table access. `tried` holds endpoint indexes that already failed for this connection.

export interface RoundRobinCursor {
  /** Endpoint list signature the cursor belongs to; a different list resets it. */
  readonly signature: string;
  next: number;
}

/** ROUND_ROBIN: the next index at or after the cursor that was not tried; -1 if all were. */
export function pickRoundRobin(count: number, tried: readonly number[], cursor: RoundRobinCursor): number {
  for (let k = 0; k < count; k++) {
    const i = (cursor.next + k) % count;
    if (!tried.includes(i)) {
      cursor.next = (i + 1) % count;
      return i;
    }
  }
  return -1;
}

/** RANDOM: uniform over the indexes not tried; -1 if all were. */
export function pickRandom(count: number, tried: readonly number[], random: () => number): number {
  let eligible = count;
  for (const t of tried) if (t >= 0 && t < count) eligible--;
  if (eligible <= 0) return -1;
  let r = Math.min(eligible - 1, Math.floor(random() * eligible));
  for (let i = 0; i < count; i++) {
    if (tried.includes(i)) continue;
    if (r === 0) return i;
    r--;
  }
  return -1;
}

/** First index not tried, for policies whose own choice is exhausted. */
export function firstUntried(count: number, tried: readonly number[]): number {
  for (let i = 0; i < count; i++) if (!tried.includes(i)) return i;
  return -1;
}
