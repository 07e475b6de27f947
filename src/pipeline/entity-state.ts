/**
 * What an entity held before the first attempt of a call, deep enough to put it back exactly
 * before a retry: a method that does `wallet.balance += amount` or `order.items.push(item)` must
 * see the entity as the caller passed it on every attempt, or a retried call would apply its
 * change twice. Restoring works in place: every object reachable from the entity keeps its
 * identity (the caller's references to `order.items` or `order.timestamp` stay valid) and gets its
 * own content back.
 */
export interface EntityState {
  readonly objects: ReadonlyMap<object, Content>;
}

type Content =
  | { readonly kind: 'record'; readonly entries: readonly (readonly [string, unknown])[] }
  | { readonly kind: 'array'; readonly items: readonly unknown[] }
  | { readonly kind: 'date'; readonly time: number }
  | { readonly kind: 'map'; readonly entries: readonly (readonly [unknown, unknown])[] }
  | { readonly kind: 'set'; readonly items: readonly unknown[] }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'opaque' };

/** Records the content of `entity` and of every object reachable from it; see {@link restoreEntity}. */
export function captureEntity(entity: object): EntityState {
  const objects = new Map<object, Content>();
  const pending: object[] = [entity];
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    if (objects.has(value)) continue;
    const content = contentOf(value);
    objects.set(value, content);
    for (const child of children(content)) {
      if (child !== null && typeof child === 'object' && !objects.has(child)) pending.push(child);
    }
  }
  return { objects };
}

/** Gives every recorded object its recorded content back, fields added since removed. */
export function restoreEntity(_entity: object, state: EntityState): void {
  for (const [value, content] of state.objects) restore(value, content);
}

function contentOf(value: object): Content {
  if (value instanceof Date) return { kind: 'date', time: value.getTime() };
  if (Array.isArray(value)) return { kind: 'array', items: [...value] };
  if (value instanceof Map) return { kind: 'map', entries: [...value] };
  if (value instanceof Set) return { kind: 'set', items: [...value] };
  if (ArrayBuffer.isView(value)) {
    return { kind: 'bytes', bytes: new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice() };
  }
  if (value instanceof ArrayBuffer) return { kind: 'bytes', bytes: new Uint8Array(value).slice() };
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) return { kind: 'opaque' };
  return { kind: 'record', entries: Object.keys(value).map((key) => [key, (value as Record<string, unknown>)[key]]) };
}

function* children(content: Content): Iterable<unknown> {
  switch (content.kind) {
    case 'record':
      for (const [, item] of content.entries) yield item;
      return;
    case 'map':
      for (const [key, item] of content.entries) {
        yield key;
        yield item;
      }
      return;
    case 'array':
    case 'set':
      yield* content.items;
      return;
    default:
      return;
  }
}

function restore(value: object, content: Content): void {
  switch (content.kind) {
    case 'date':
      (value as Date).setTime(content.time);
      return;
    case 'array': {
      const array = value as unknown[];
      array.length = content.items.length;
      content.items.forEach((item, i) => {
        array[i] = item;
      });
      return;
    }
    case 'map': {
      const map = value as Map<unknown, unknown>;
      map.clear();
      for (const [key, item] of content.entries) map.set(key, item);
      return;
    }
    case 'set': {
      const set = value as Set<unknown>;
      set.clear();
      for (const item of content.items) set.add(item);
      return;
    }
    case 'bytes': {
      const view = ArrayBuffer.isView(value)
        ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
        : new Uint8Array(value as ArrayBuffer);
      view.set(content.bytes);
      return;
    }
    case 'record': {
      const record = value as Record<string, unknown>;
      const keep = new Set(content.entries.map(([key]) => key));
      for (const key of Object.keys(record)) if (!keep.has(key)) delete record[key];
      for (const [key, item] of content.entries) {
        if (record[key] !== item) record[key] = item;
      }
      return;
    }
    default:
      return;
  }
}
