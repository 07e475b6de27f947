import { diff } from './diff.js';
import type { EntityIdOptions, HistoryEntry, HistoryPage, ListOptions, PageOptions, VersionChanges } from './entry.js';

export function byVersion(a: HistoryEntry, b: HistoryEntry): number {
  return a.version - b.version;
}

/** The entries of an ascending list that fall within `opts`. */
export function selectRange(entries: readonly HistoryEntry[], opts: ListOptions): HistoryEntry[] {
  const from = opts.fromVersion ?? Number.NEGATIVE_INFINITY;
  const to = opts.toVersion ?? Number.POSITIVE_INFINITY;
  const inRange = entries.filter((entry) => entry.version >= from && entry.version <= to);
  if (opts.order === 'desc') inRange.reverse();
  return opts.limit === undefined ? inRange : inRange.slice(0, Math.max(0, opts.limit));
}

/**
 * The `asOf` rule every store follows: of the entries whose timestamp is not after `time`, the one
 * with the latest timestamp, ties going to the highest version.
 */
export function entryAsOf(entries: readonly HistoryEntry[], time: Date): HistoryEntry | undefined {
  const bound = time.getTime();
  let found: HistoryEntry | undefined;
  for (const entry of entries) {
    const at = entry.timestamp.getTime();
    if (at > bound) continue;
    const best = found?.timestamp.getTime();
    if (found === undefined || best === undefined || at > best || (at === best && entry.version > found.version)) {
      found = entry;
    }
  }
  return found;
}

const DEFAULT_PAGE_SIZE = 50;

/** The query a store runs for one page: a version range, an order and a row limit. */
export interface RangeQuery {
  readonly fromVersion?: number;
  readonly toVersion?: number;
  readonly order: 'asc' | 'desc';
  readonly limit: number;
}

/**
 * @internal `page()` for every store, over the store's own ranged `list`: asks for one entry more
 * than the page holds to learn whether another page follows.
 */
export async function pageOf<T>(
  list: (query: RangeQuery) => Promise<HistoryEntry<T>[]>,
  opts: PageOptions = {},
): Promise<HistoryPage<T>> {
  const limit = Math.max(1, Math.trunc(opts.limit ?? DEFAULT_PAGE_SIZE) || DEFAULT_PAGE_SIZE);
  const direction = opts.direction ?? (opts.before !== undefined ? 'backward' : 'forward');
  const query: RangeQuery =
    direction === 'forward'
      ? {
          order: 'asc',
          limit: limit + 1,
          ...(opts.after === undefined ? {} : { fromVersion: Math.floor(opts.after) + 1 }),
        }
      : {
          order: 'desc',
          limit: limit + 1,
          ...(opts.before === undefined ? {} : { toVersion: Math.ceil(opts.before) - 1 }),
        };
  const fetched = await list(query);
  const entries = fetched.slice(0, limit);
  const last = entries.at(-1);
  if (fetched.length <= limit || last === undefined) return { entries };
  return {
    entries,
    next: direction === 'forward' ? { after: last.version, limit } : { before: last.version, direction, limit },
  };
}

/**
 * @internal `changes()` for every store: walks the history forwards one page at a time and diffs
 * each snapshot with the one before, so a long history is never held in memory at once.
 */
export async function* changesOf<T>(
  page: (opts: PageOptions) => Promise<HistoryPage<T>>,
  pageSize = 100,
): AsyncGenerator<VersionChanges<T>> {
  let previous: HistoryEntry<T> | undefined;
  let opts: PageOptions | undefined = { limit: pageSize };
  while (opts !== undefined) {
    const current = await page(opts);
    for (const entry of current.entries) {
      yield previous === undefined
        ? { entry, changes: diff({}, entry.snapshot) }
        : { entry, previousVersion: previous.version, changes: diff(previous.snapshot, entry.snapshot) };
      previous = entry;
    }
    opts = current.next;
  }
}

/** @internal The order `byTransaction` returns entries in: by entity type, entity id, then version. */
export function byEntityAndVersion(a: HistoryEntry, b: HistoryEntry): number {
  if (a.entityType !== b.entityType) return a.entityType < b.entityType ? -1 : 1;
  if (a.entityId !== b.entityId) return a.entityId < b.entityId ? -1 : 1;
  return a.version - b.version;
}

/**
 * @internal What a store's read is typed as: the store's `EntityTypes` map states what its
 * snapshots hold (the store does not check it), so its entries are cast to that type here, once.
 */
export function typedAs<E>(read: HistoryEntry | readonly HistoryEntry[] | undefined): E {
  return read as E;
}

/**
 * @internal Code point order, the order every built-in store lists types and ids in (SQLite's
 * BINARY, MySQL's utf8mb4_bin, PostgreSQL's "C" collation, MongoDB's simple collation): UTF-16
 * comparison (`<`) differs from it for characters above U+FFFF.
 */
export function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** @internal {@link EntityIdOptions} as the SQL stores bind them: `after` or null, a prefix ('' for none), a limit or undefined. */
export function idBounds(opts: EntityIdOptions = {}): {
  after: string | null;
  prefix: string;
  limit: number | undefined;
} {
  const limit =
    opts.limit === undefined || opts.limit === Number.POSITIVE_INFINITY
      ? undefined
      : Math.max(0, Math.trunc(opts.limit) || 0);
  return { after: opts.after ?? null, prefix: opts.prefix ?? '', limit };
}

/** @internal `entityIds` over ids already in memory: distinct, in code point order, within `opts`. */
export function selectIds(ids: Iterable<string>, opts: EntityIdOptions = {}): string[] {
  const { after, prefix, limit } = idBounds(opts);
  const selected = [...new Set(ids)]
    .filter((id) => id.startsWith(prefix) && (after === null || byCodePoint(id, after) > 0))
    .sort(byCodePoint);
  return limit === undefined ? selected : selected.slice(0, limit);
}
