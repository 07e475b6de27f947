/** The value redacted fields are written as. */
export const REDACTED = '[redacted]';

/** Thrown by {@link takeSnapshot} for a value that cannot be copied (a cycle) or is too large. */
export class SnapshotError extends Error {}

/**
 * A deep, JSON-safe copy of `entity`: Dates stay Dates, Maps become objects (or `[key, value]`
 * pairs when a key is not a string), Sets and typed arrays become arrays, BigInts become
 * strings, objects with `toJSON` (ObjectId, Decimal128) are copied as what it returns, and
 * functions, symbols and `undefined` fields are left out. Dotted `ignore` paths are removed
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
  const copy = copyObject(entity, [entity]);
  if (maxBytes !== Number.POSITIVE_INFINITY) {
    const size = approximateSize(copy);
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
      if (key in holder) holder[key] = REDACTED;
    });
  }
  return copy;
}

function copyValue(value: unknown, ancestors: object[]): unknown {
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return undefined;
    case 'object':
      break;
    default:
      return value;
  }
  if (value === null) return null;
  if (value instanceof Date) return new Date(value.getTime());
  if (ancestors.includes(value)) {
    throw new SnapshotError('the entity refers to itself (a cycle), which a history snapshot cannot hold');
  }
  ancestors.push(value);
  try {
    if (Array.isArray(value)) return value.map((item) => copyValue(item, ancestors) ?? null);
    if (value instanceof Map) return copyMap(value, ancestors);
    if (value instanceof Set) return [...value].map((item) => copyValue(item, ancestors) ?? null);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return copyValue(toJSON.call(value), ancestors);
    if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
    return copyObject(value, ancestors);
  } finally {
    ancestors.pop();
  }
}

function copyObject(source: object, ancestors: object[]): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(source)) {
    const item = copyValue((source as Record<string, unknown>)[key], ancestors);
    if (item !== undefined) copy[key] = item;
  }
  return copy;
}

function copyMap(map: Map<unknown, unknown>, ancestors: object[]): unknown {
  const entries = [...map.entries()];
  if (entries.every(([key]) => typeof key === 'string')) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      const value = copyValue(item, ancestors);
      if (value !== undefined) copy[key as string] = value;
    }
    return copy;
  }
  return entries.map(([key, item]) => [copyValue(key, ancestors) ?? null, copyValue(item, ancestors) ?? null]);
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
  if (rest.length === 0) apply(holder, head);
  else applyAtPath(holder[head], rest, apply);
}

/** The length of the copy's JSON text, counted without building it. */
function approximateSize(value: unknown): number {
  if (typeof value === 'string') return value.length + 2;
  if (value === null || typeof value !== 'object') return 8;
  if (value instanceof Date) return 24;
  let size = 2;
  // Indexed loops over Object.keys: no [key, value] pair or iterator allocated per field (a hot path).
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) size += approximateSize(value[i]) + 1;
    return size;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    size += key.length + 4 + approximateSize(record[key]);
  }
  return size;
}
