import type { Difference } from './entry.js';

/**
 * The field-level differences between two values (usually two snapshots), in a stable order:
 * nested objects by key (sorted), arrays by index, or by their elements' `id` when every element on both
 * sides is an object with a distinct string or number `id` (so an insertion in the middle shows
 * as one `add`, not a change of every later element; a move is not a difference). Dates compare
 * by value; `undefined` fields count as absent.
 *
 * ```ts
 * diff({ total: 10, lines: [{ id: 1, qty: 1 }] }, { total: 12, lines: [{ id: 1, qty: 2 }], note: 'x' });
 * // [{ path: 'total', kind: 'change', before: 10, after: 12 },
 * //  { path: 'lines[id=1].qty', kind: 'change', before: 1, after: 2 },
 * //  { path: 'note', kind: 'add', after: 'x' }]
 * ```
 */
export function diff(before: unknown, after: unknown): Difference[] {
  const out: Difference[] = [];
  compare(before, after, '', out);
  return out;
}

function compare(before: unknown, after: unknown, path: string, out: Difference[]): void {
  if (sameLeaf(before, after)) return;
  if (Array.isArray(before) && Array.isArray(after)) {
    if (hasIds(before) && hasIds(after)) compareById(before, after, path, out);
    else compareByIndex(before, after, path, out);
    return;
  }
  if (isRecord(before) && isRecord(after)) {
    // Sorted: databases return object keys in different orders (PostgreSQL's jsonb by length).
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) {
      const inner = path === '' ? key : `${path}.${key}`;
      const [a, b] = [before[key], after[key]];
      if (a === undefined && b !== undefined) out.push({ path: inner, kind: 'add', after: b });
      else if (a !== undefined && b === undefined) out.push({ path: inner, kind: 'remove', before: a });
      else compare(a, b, inner, out);
    }
    return;
  }
  out.push({ path: path === '' ? '(root)' : path, kind: 'change', before, after });
}

function compareByIndex(before: unknown[], after: unknown[], path: string, out: Difference[]): void {
  const length = Math.max(before.length, after.length);
  for (let i = 0; i < length; i++) {
    const inner = `${path}[${i}]`;
    if (i >= before.length) out.push({ path: inner, kind: 'add', after: after[i] });
    else if (i >= after.length) out.push({ path: inner, kind: 'remove', before: before[i] });
    else compare(before[i], after[i], inner, out);
  }
}

type WithId = Record<string, unknown> & { id: string | number };

function compareById(before: WithId[], after: WithId[], path: string, out: Difference[]): void {
  const old = new Map(before.map((item) => [item.id, item]));
  const now = new Map(after.map((item) => [item.id, item]));
  for (const [id, item] of old) {
    const inner = `${path}[id=${id}]`;
    const next = now.get(id);
    if (next === undefined) out.push({ path: inner, kind: 'remove', before: item });
    else compare(item, next, inner, out);
  }
  for (const [id, item] of now) {
    if (!old.has(id)) out.push({ path: `${path}[id=${id}]`, kind: 'add', after: item });
  }
}

function hasIds(items: unknown[]): items is WithId[] {
  if (items.length === 0) return true;
  const seen = new Set<unknown>();
  for (const item of items) {
    if (!isRecord(item)) return false;
    const id = item.id;
    if ((typeof id !== 'string' && typeof id !== 'number') || seen.has(id)) return false;
    seen.add(id);
  }
  return true;
}

function sameLeaf(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime() || (isNaNDate(a) && isNaNDate(b));
  return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
}

function isNaNDate(date: Date): boolean {
  return Number.isNaN(date.getTime());
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date);
}

/**
 * Whether two values (usually two snapshots) are exactly equal: arrays element by element in
 * order (unlike {@link diff}, a move is a difference), objects by their own keys whatever their
 * order, Dates by time (invalid Dates equal), numbers as `Object.is` (so `NaN` equals `NaN` and
 * `-0` differs from `0`); an `undefined` field counts as absent.
 *
 * ```ts
 * sameValue({ lines: [{ id: 1 }, { id: 2 }] }, { lines: [{ id: 2 }, { id: 1 }] }); // false
 * ```
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && Object.is(a.getTime(), b.getTime());
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = (record: Record<string, unknown>) => Object.keys(record).filter((key) => record[key] !== undefined);
  const leftKeys = keys(left);
  if (leftKeys.length !== keys(right).length) return false;
  return leftKeys.every((key) => Object.hasOwn(right, key) && sameValue(left[key], right[key]));
}
