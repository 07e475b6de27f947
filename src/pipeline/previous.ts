import { DecoratorError } from '../errors.js';
import { chainEntry } from '../history/chain.js';
import { sameValue } from '../history/diff.js';
import type { HistoryEntry, HistoryReader, HistoryWriter } from '../history/entry.js';
import { takeSnapshot } from '../history/snapshot.js';
import type { CallPlan } from './plan.js';

/**
 * What `onUnchanged: 'skip'` and `chain: true` need from the previous entry, read through the
 * call's own session so that it sees (and is serialised with) the transaction's writes.
 */
export function readPrevious(
  plan: CallPlan,
  writer: HistoryWriter,
  entityType: string,
  entityId: string,
  session: unknown,
): Promise<HistoryEntry | undefined> {
  const latest = (writer as Partial<HistoryReader>).latest;
  if (typeof latest !== 'function') {
    const option = plan.chain ? 'chain' : "onUnchanged: 'skip'";
    throw new DecoratorError(
      `${plan.method} uses @HistoryTracked({ ${option} }), which reads the entity's latest entry through the history ` +
        'writer, but the writer has no latest(entityType, entityId, { session }). Use a built-in store, or add that method.',
    );
  }
  return Promise.resolve(latest.call(writer, entityType, entityId, session === undefined ? {} : { session }));
}

/**
 * Whether an update changes no tracked field: the entity's snapshot (ignore and redact applied,
 * version and timestamp left out) is exactly the latest entry's (`sameValue`: arrays in order, so
 * a reordering is a change), and that entry is the version the
 * entity was loaded at (a stale entity is not "unchanged": its update must reach the conflict
 * check). An entity with a redacted field present always counts as changed: history holds only
 * the mask, so a change of the real value cannot be seen.
 */
export function isUnchanged(
  plan: CallPlan,
  entity: Record<string, unknown>,
  previous: HistoryEntry | undefined,
): boolean {
  if (previous === undefined || previous.op === 'delete') return false;
  if (previous.version !== entity[plan.versionField]) return false;
  if ((previous.schemaVersion ?? undefined) !== plan.schemaVersion) return false;
  const snapshot = previous.snapshot;
  if (snapshot === null || typeof snapshot !== 'object') return false;
  let current: Record<string, unknown>;
  try {
    current = takeSnapshot(entity, plan.ignore, []);
  } catch {
    return false;
  }
  if (plan.redact.some((path) => hasPath(current, path.split('.')))) return false;
  const before: Record<string, unknown> = {};
  for (const key of Object.keys(snapshot)) {
    Object.defineProperty(before, key, {
      value: (snapshot as Record<string, unknown>)[key],
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  for (const field of [plan.versionField, plan.timestampField]) {
    delete before[field];
    delete current[field];
  }
  return sameValue(before, current);
}

/**
 * The entry as written: with its schema version, and linked into the chain when `chain` is on
 * (signed with the current key of `chain: { key }`; the store writes the head it carries).
 */
export function finishEntry(plan: CallPlan, entry: HistoryEntry, previous: HistoryEntry | undefined): HistoryEntry {
  if (plan.schemaVersion !== undefined) entry.schemaVersion = plan.schemaVersion;
  return plan.chain ? chainEntry(entry, previous, plan.chainKey?.()) : entry;
}

function hasPath(value: unknown, path: readonly string[]): boolean {
  if (Array.isArray(value)) return value.some((item) => hasPath(item, path));
  if (value === null || typeof value !== 'object') return false;
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(value, head)) return false;
  return rest.length === 0 || hasPath((value as Record<string, unknown>)[head], rest);
}
