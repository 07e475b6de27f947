/**
 * What an entity held before the first attempt of a call, deep enough to put it back exactly
 * before a retry: a method that does `wallet.balance += amount` or `order.items.push(item)` must
 * see the entity as the caller passed it on every attempt, or a retried call would apply its
 * change twice.
 */
export interface EntityState {
  readonly fields: readonly (readonly [string, unknown])[];
}

/** Copies every own enumerable field of `entity`, recursively; see {@link restoreEntity}. */
export function captureEntity(entity: Record<string, unknown>): EntityState {
  const seen = new Map<object, unknown>();
  return { fields: Object.keys(entity).map((key) => [key, copy(entity[key], seen)] as const) };
}

/**
 * Puts the captured fields back on `entity` (fresh copies, so the state can be restored again)
 * and removes fields added since: the entity is as it was before the first attempt.
 */
export function restoreEntity(entity: Record<string, unknown>, state: EntityState): void {
  const keep = new Set(state.fields.map(([key]) => key));
  for (const key of Object.keys(entity)) if (!keep.has(key)) delete entity[key];
  const seen = new Map<object, unknown>();
  for (const [key, value] of state.fields) entity[key] = copy(value, seen);
}

/**
 * A deep copy that keeps what each value is: prototypes (class instances stay instances of their
 * class), Dates, Maps, Sets, typed arrays and buffers, and shared or cyclic references. Functions
 * and other values without own data (a Symbol, a WeakMap) are kept as they are.
 */
function copy(value: unknown, seen: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const done = seen.get(value);
  if (done !== undefined) return done;
  if (value instanceof Date) return remember(seen, value, new Date(value.getTime()));
  if (value instanceof DataView) {
    const bytes = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    return remember(seen, value, new DataView(bytes));
  }
  // A typed array or Buffer: %TypedArray%.prototype.slice copies (Buffer's own slice would share memory).
  if (ArrayBuffer.isView(value)) return remember(seen, value, typedArraySlice.call(value));
  if (value instanceof ArrayBuffer) return remember(seen, value, value.slice(0));
  if (value instanceof Map) {
    const out = remember(seen, value, new Map());
    for (const [k, v] of value) out.set(copy(k, seen), copy(v, seen));
    return out;
  }
  if (value instanceof Set) {
    const out = remember(seen, value, new Set());
    for (const item of value) out.add(copy(item, seen));
    return out;
  }
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) return value;
  if (Array.isArray(value)) {
    const out = remember(seen, value, new Array<unknown>(value.length));
    for (let i = 0; i < value.length; i++) out[i] = copy(value[i], seen);
    return out;
  }
  const out = remember(seen, value, Object.create(Object.getPrototypeOf(value)) as Record<string, unknown>);
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, {
      value: copy((value as Record<string, unknown>)[key], seen),
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return out;
}

const typedArraySlice = (Object.getPrototypeOf(Uint8Array.prototype) as { slice: (this: unknown) => unknown }).slice;

function remember<T>(seen: Map<object, unknown>, from: object, to: T): T {
  seen.set(from, to);
  return to;
}
