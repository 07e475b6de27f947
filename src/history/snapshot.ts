import { snapshotSource } from '../pipeline/entity-kind.js';
import { defineField } from './codec.js';

/** The value redacted fields are written as. */
export const REDACTED = '[redacted]';

/** Thrown by {@link takeSnapshot} for a value that cannot be copied (a cycle) or is too large. */
export class SnapshotError extends Error {}

/**
 * A deep, JSON-safe copy of `entity`: Dates stay Dates, Maps become objects (or `[key, value]`
 * pairs when a key is not a string), Sets and typed arrays become arrays, BigInts become
 * strings, objects with `toJSON` (ObjectId, Decimal128) are copied as what it returns, and
 * functions, symbols and `undefined` fields are left out. Every key is copied as an own field,
 * `__proto__` included. A Mongoose document is copied from its `toObject()` data. Dotted `ignore` paths are removed
 * and `redact` paths masked on the copy only; a path through an array applies to every element.
 * A copy larger than `maxBytes` (counted as the characters of its JSON text) is rejected.
 *
 * ```ts
 * takeSnapshot({ a: 1, pw: 'x', tmp: 2 }, ['tmp'], ['pw']); // { a: 1, pw: '[redacted]' }
 * ```
 */
export function takeSnapshot(
  entity: object,
  ignore: readonly string[] = [],
  redact: readonly string[] = [],
  maxBytes: number = Number.POSITIVE_INFINITY,
): Record<string, unknown> {
  // The copy counts its JSON length as it goes (one walk, not two); saved and restored around it
  // in case a toJSON the copy calls takes a snapshot of its own.
  const outer = counted;
  counted = 0;
  let copy: Record<string, unknown>;
  let size: number;
  try {
    const source = snapshotSource(entity);
    copy = copyObject(source, [source]);
    size = counted;
  } finally {
    counted = outer;
  }
  if (maxBytes !== Number.POSITIVE_INFINITY) {
    if (size > maxBytes) {
      throw new SnapshotError(
        `its snapshot is about ${size} bytes, more than the ${maxBytes} allowed (maxSnapshotBytes); ` +
          'history keeps a full copy per version, so keep large blobs out of it (ignore the field) or raise maxSnapshotBytes',
      );
    }
  }
  for (const path of ignore) applyAtPath(copy, path.split('.'), (holder, key) => delete holder[key]);
  for (const path of redact) {
    applyAtPath(copy, path.split('.'), (holder, key) => {
      if (Object.hasOwn(holder, key)) defineField(holder, key, REDACTED);
    });
  }
  return copy;
}

/**
 * The length of the JSON text of what the running copy has produced so far, counted as it copies
 * (a string its length + 2, a number, boolean or null 8, a Date 24, an array 2 + 1 per item, an
 * object 2 + its keys' lengths + 4 per field): the size `maxSnapshotBytes` is checked against.
 */
let counted = 0;

function copyValue(value: unknown, ancestors: object[]): unknown {
  switch (typeof value) {
    case 'string':
      counted += value.length + 2;
      return value;
    case 'bigint': {
      const text = value.toString();
      counted += text.length + 2;
      return text;
    }
    case 'function':
    case 'symbol':
    case 'undefined':
      return undefined;
    case 'object':
      break;
    default:
      counted += 8;
      return value;
  }
  if (value === null) {
    counted += 8;
    return null;
  }
  if (value instanceof Date) {
    counted += 24;
    return new Date(value.getTime());
  }
  if (ancestors.includes(value)) {
    throw new SnapshotError('the entity refers to itself (a cycle), which a history snapshot cannot hold');
  }
  ancestors.push(value);
  try {
    if (Array.isArray(value)) return copyArray(value, ancestors);
    if (value instanceof Map) return copyMap(value, ancestors);
    if (value instanceof Set) return copyArray([...value], ancestors);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return copyValue(toJSON.call(value), ancestors);
    if (ArrayBuffer.isView(value)) return copyArray(Array.from(value as unknown as ArrayLike<number>), ancestors);
    return copyObject(value, ancestors);
  } finally {
    ancestors.pop();
  }
}

/** An array's copy: what cannot be copied (a function, `undefined`) becomes null, as JSON has it. */
function copyArray(items: readonly unknown[], ancestors: object[]): unknown[] {
  counted += 2;
  const copy = new Array<unknown>(items.length);
  for (let i = 0; i < items.length; i++) {
    let item = copyValue(items[i], ancestors);
    if (item === undefined) {
      item = null;
      counted += 8;
    }
    copy[i] = item;
    counted += 1;
  }
  return copy;
}

function copyObject(source: object, ancestors: object[]): Record<string, unknown> {
  counted += 2;
  const copy: Record<string, unknown> = {};
  const keys = Object.keys(source);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const item = copyValue((source as Record<string, unknown>)[key], ancestors);
    if (item !== undefined) {
      defineField(copy, key, item);
      counted += key.length + 4;
    }
  }
  return copy;
}

function copyMap(map: Map<unknown, unknown>, ancestors: object[]): unknown {
  const entries = [...map.entries()];
  if (entries.every(([key]) => typeof key === 'string')) {
    counted += 2;
    const copy: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const value = copyValue(item, ancestors);
      if (value !== undefined) {
        defineField(copy, key as string, value);
        counted += (key as string).length + 4;
      }
    }
    return copy;
  }
  return copyArray(
    entries.map(([key, item]) => [key, item]),
    ancestors,
  );
}

function applyAtPath(
  target: unknown,
  path: readonly string[],
  apply: (holder: Record<string, unknown>, key: string) => void,
): void {
  if (Array.isArray(target)) {
    for (const item of target) applyAtPath(item, path, apply);
    return;
  }
  if (target === null || typeof target !== 'object' || target instanceof Date) return;
  const [head, ...rest] = path;
  if (head === undefined) return;
  const holder = target as Record<string, unknown>;
  if (!Object.hasOwn(holder, head)) return; // never walk into (or change) Object.prototype
  if (rest.length === 0) apply(holder, head);
  else applyAtPath(holder[head], rest, apply);
}
