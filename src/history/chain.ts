import { createHash } from 'node:crypto';
import type { HistoryEntry, HistoryReader } from './entry.js';

/**
 * The text an entry's hash is computed over: JSON with object keys sorted, Dates as
 * `{ "$date": "<ISO>" }` (`"Invalid Date"` for an invalid one), `undefined` fields left out, and
 * the entry's own `hash` excluded (its `prevHash` included). Equal content gives equal text
 * whatever order a database returns keys in. An object whose only key is `$date` or `$escape` is
 * written as `{ "$escape": <it> }`, so that it cannot pass for a Date; `__proto__` is hashed as
 * the ordinary key it is. Lone surrogates are kept as JSON escapes (`\ud800`), so the text is
 * ASCII there and hashes as itself. As in JSON, `NaN` and `±Infinity` hash as `null` and `-0` as `0`.
 *
 * ```ts
 * canonicalJson({ b: 1, a: new Date(0) }); // '{"a":{"$date":"1970-01-01T00:00:00.000Z"},"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value)) ?? 'null';
}

function canonical(value: unknown): unknown {
  if (value instanceof Date) {
    return { $date: Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString() };
  }
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : canonical(item)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const keys = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort();
    for (const key of keys) {
      // defineProperty: an assignment to `__proto__` would set the prototype and drop the field.
      const item = canonical((value as Record<string, unknown>)[key]);
      Object.defineProperty(out, key, { value: item, writable: true, enumerable: true, configurable: true });
    }
    if (keys.length === 1 && (keys[0] === '$date' || keys[0] === '$escape')) return { $escape: out };
    return out;
  }
  return value;
}

/**
 * The SHA-256 (hex) of an entry for the history chain: over its canonical content (every field
 * but `hash`) and so over `prevHash`, which links it to the entity's previous entry.
 *
 * ```ts
 * entry.hash = hashEntry({ ...entry, prevHash: previous?.hash });
 * ```
 */
export function hashEntry(entry: HistoryEntry): string {
  const { hash: _ignored, ...content } = entry;
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

/**
 * Links an entry into its entity's chain: sets `prevHash` to the previous entry's hash (when it
 * has one) and `hash` over the result.
 *
 * ```ts
 * const chained = chainEntry(entry, await store.latest(type, id, { session }));
 * ```
 */
export function chainEntry(entry: HistoryEntry, previous: HistoryEntry | undefined): HistoryEntry {
  const linked: HistoryEntry = { ...entry };
  delete linked.hash;
  delete linked.prevHash;
  if (previous?.hash !== undefined) linked.prevHash = previous.hash;
  linked.hash = hashEntry(linked);
  return linked;
}

/**
 * How a chain was broken: an entry whose content no longer matches its hash (`altered`), a
 * missing entry (`removed`), or an entry that is not the one its successor was chained to, or has
 * no hash amid chained ones (`inserted`).
 *
 * ```ts
 * const kind: TamperKind = 'altered';
 * ```
 */
export type TamperKind = 'altered' | 'removed' | 'inserted';

/**
 * What {@link verifyHistory} found.
 *
 * ```ts
 * const result = await verifyHistory(store, 'Order', '42');
 * if (!result.ok) console.error(`v${result.version} was ${result.kind}: ${result.detail}`);
 * ```
 */
export type VerifyResult =
  | {
      readonly ok: true;
      /** How many entries were read. */
      readonly entries: number;
      /** How many of them, written before `chain: true` was turned on, carry no hash. */
      readonly unchained: number;
    }
  | {
      readonly ok: false;
      /** The first version found altered, removed or inserted. */
      readonly version: number;
      readonly kind: TamperKind;
      readonly detail: string;
    };

/**
 * Options of {@link verifyHistory}.
 *
 * ```ts
 * await verifyHistory(store, 'Order', '42', { latestVersion: order.version });
 * ```
 */
export interface VerifyOptions {
  /**
   * The version the entity is known to be at (e.g. its current `version`). A chain alone cannot
   * tell that its newest entries were deleted; given this, missing newest entries are `removed`.
   */
  readonly latestVersion?: number;
  /** Entries read per query; default 500. */
  readonly batchSize?: number;
}

/**
 * Checks an entity's hash chain (written with `@HistoryTracked({ chain: true })`), reading it in
 * ascending batches: every chained entry must match its own hash, link to the entry just before
 * it, and versions must have no gaps. Entries before the first chained one (written before the
 * option was turned on) are counted as `unchained`, not checked. Read from the store itself,
 * not through `upcastReader`: upcast snapshots no longer match their hashes.
 *
 * It detects edits made without recomputing the chain. Someone who can write the table and
 * recomputes every later hash is not detected: keep the latest hash somewhere they cannot write
 * to if that matters.
 *
 * ```ts
 * const result = await verifyHistory(store, 'Order', '42');
 * // { ok: true, entries: 3, unchained: 0 } or { ok: false, version: 2, kind: 'altered', detail: '…' }
 * ```
 */
export async function verifyHistory(
  reader: HistoryReader,
  entityType: string,
  entityId: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const batch = Math.max(1, Math.trunc(options.batchSize ?? 500));
  let previous: HistoryEntry | undefined;
  let entries = 0;
  let unchained = 0;
  let from: number | undefined;
  for (;;) {
    const page = await reader.list(
      entityType,
      entityId,
      from === undefined ? { limit: batch } : { fromVersion: from, limit: batch },
    );
    for (const entry of page) {
      const broken = check(entry, previous);
      if (broken) return broken;
      if (entry.hash === undefined) unchained += 1;
      entries += 1;
      previous = entry;
    }
    if (page.length < batch || previous === undefined) break;
    from = previous.version + 1;
  }
  const latest = options.latestVersion;
  if (latest !== undefined && (previous === undefined || previous.version < latest)) {
    const missing = previous === undefined ? latest : previous.version + 1;
    return {
      ok: false,
      version: missing,
      kind: 'removed',
      detail: `the entity is at version ${latest}, but history ends at ${previous === undefined ? 'nothing' : `version ${previous.version}`}`,
    };
  }
  return { ok: true, entries, unchained };
}

function check(entry: HistoryEntry, previous: HistoryEntry | undefined): VerifyResult | undefined {
  const chainStarted = previous?.hash !== undefined;
  if (entry.hash === undefined) {
    if (!chainStarted) return undefined;
    return {
      ok: false,
      version: entry.version,
      kind: 'inserted',
      detail: `version ${entry.version} has no hash, but follows chained entries`,
    };
  }
  if (hashEntry(entry) !== entry.hash) {
    return {
      ok: false,
      version: entry.version,
      kind: 'altered',
      detail: `the content of version ${entry.version} does not match its hash`,
    };
  }
  if (entry.prevHash === (previous?.hash ?? undefined)) {
    if (previous === undefined || entry.version === previous.version + 1) return undefined;
  }
  if (previous === undefined) {
    return {
      ok: false,
      version: entry.version - 1,
      kind: 'removed',
      detail: `version ${entry.version} is chained to an entry before it that is missing`,
    };
  }
  if (entry.version > previous.version + 1) {
    return {
      ok: false,
      version: previous.version + 1,
      kind: 'removed',
      detail: `versions ${previous.version + 1} to ${entry.version - 1} are missing`,
    };
  }
  if (entry.prevHash === undefined && previous.hash === undefined) return undefined;
  return {
    ok: false,
    version: previous.version,
    kind: 'inserted',
    detail: `version ${entry.version} was chained to another entry than the version ${previous.version} now stored`,
  };
}
