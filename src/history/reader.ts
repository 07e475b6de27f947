import type { HistoryEntry, ListOptions } from './entry.js';

export function byVersion(a: HistoryEntry, b: HistoryEntry): number {
  return a.version - b.version;
}

/** The entries of an ascending list that fall within `opts`. */
export function selectRange(entries: readonly HistoryEntry[], opts: ListOptions): HistoryEntry[] {
  const from = opts.fromVersion ?? Number.NEGATIVE_INFINITY;
  const to = opts.toVersion ?? Number.POSITIVE_INFINITY;
  const inRange = entries.filter((entry) => entry.version >= from && entry.version <= to);
  return opts.limit === undefined ? inRange : inRange.slice(0, Math.max(0, opts.limit));
}

/** The highest version of an ascending list whose timestamp is not after `time`. */
export function entryAsOf(entries: readonly HistoryEntry[], time: Date): HistoryEntry | undefined {
  let found: HistoryEntry | undefined;
  for (const entry of entries) {
    if (entry.timestamp.getTime() <= time.getTime()) found = entry;
  }
  return found;
}
