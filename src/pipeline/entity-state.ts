/**
 * What an entity held before the first attempt of a call, deep enough to put it back exactly
 * before a retry: a method that does `wallet.balance += amount` or `order.items.push(item)` must
 * see the entity as the caller passed it on every attempt, or a retried call would apply its
 * change twice. Restoring works in place: every object reachable from the entity keeps its
 * identity (the caller's references to `order.items` or `order.timestamp` stay valid) and gets its
 * own content back.
 *
 * Only state the library can see can be put back: every own property (symbol-keyed and
 * non-enumerable ones too, and extra keys on arrays), the content of dates, maps, sets and binary
 * buffers, and so on for everything reachable. Some state lives where no one outside the object
 * can reach it: a class's `#private` fields (native or compiled), the internal slots of built-ins
 * such as `URL`, `WeakMap` contents, and what an own getter or setter keeps behind it. An entity
 * holding such state is recorded as `unrestorable`, with the reason, and a call on it is not run
 * a second time (see `ownFailed` in invoke.ts). State kept in closures the method reaches through
 * a function (not through the entity) cannot be seen either; the README says so.
 */
export interface EntityState {
  readonly objects: ReadonlyMap<object, Content>;
  /** Why the entity cannot be put back exactly as it was, when it cannot. */
  readonly unrestorable: string | undefined;
}

import { types } from 'node:util';
import { hidesInstanceState } from './class-source.js';

type Inner =
  | { readonly kind: 'date'; readonly time: number }
  | { readonly kind: 'map'; readonly entries: readonly (readonly [unknown, unknown])[] }
  | { readonly kind: 'set'; readonly items: readonly unknown[] }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | undefined;

interface Content {
  /**
   * Every own key, in `Reflect.ownKeys` order (array indices, `length`, then the rest); none for a
   * binary view, whose indices are its bytes (recorded in `inner`, not key by key).
   */
  readonly keys: readonly (string | symbol)[];
  /**
   * The descriptor of each key; or, for the common object whose own properties are all
   * enumerable data properties with string keys (and an array's `length`), on an extensible
   * object that is no proxy, just their values: recording descriptors would make every call pay
   * for what only a retry needs. Then only values are compared and put back, each property
   * keeping the attributes it has.
   */
  readonly descriptors: readonly PropertyDescriptor[] | undefined;
  readonly values: readonly unknown[];
  readonly extensible: boolean;
  readonly inner: Inner;
}

/** Records the content of `entity` and of every object reachable from it; see {@link restoreEntity}. */
export function captureEntity(entity: object): EntityState {
  const objects = new Map<object, Content>();
  let unrestorable: string | undefined;
  const pending: object[] = [entity];
  // Plain loops, no generators: this runs before every call that may be retried.
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    if (objects.has(value)) continue;
    unrestorable ??= hiddenState(value);
    const content = contentOf(value);
    objects.set(value, content);
    unrestorable ??= accessorIn(value, content);
    for (const child of content.values) queue(child, objects, pending);
    const { inner } = content;
    if (inner?.kind === 'map') {
      for (const [key, item] of inner.entries) {
        queue(key, objects, pending);
        queue(item, objects, pending);
      }
    } else if (inner?.kind === 'set') {
      for (const item of inner.items) queue(item, objects, pending);
    }
  }
  return { objects, unrestorable };
}

function queue(child: unknown, seen: ReadonlyMap<object, Content>, pending: object[]): void {
  if (child !== null && typeof child === 'object' && !seen.has(child)) pending.push(child);
}

/**
 * Gives every recorded object its recorded content back, properties added since removed, or
 * changes nothing at all: it first checks that every recorded object can take its old content
 * back (one with an own getter or setter, or one the method froze, sealed or gave a fixed
 * property cannot), and answers why not when one cannot, so the caller never gets half an entity
 * back. Never throws.
 */
export function restoreEntity(state: EntityState): string | undefined {
  if (state.unrestorable !== undefined) return state.unrestorable;
  const changed: [object, Content][] = [];
  try {
    for (const [value, content] of state.objects) {
      // Accessors on the common objects were not looked for when they were recorded: now they are.
      const refused =
        (content.descriptors === undefined ? currentAccessor(value) : undefined) ?? refusalIfChanged(value, content);
      if (refused === null) continue;
      if (refused !== undefined) return refused;
      changed.push([value, content]);
    }
  } catch (error) {
    return `reading it back failed: ${messageOf(error)}`;
  }
  for (const [value, content] of changed) {
    try {
      if (!restore(value, content)) return `${describe(value)} refused its old content`;
    } catch (error) {
      return `putting ${describe(value)} back failed: ${messageOf(error)}`;
    }
  }
  return undefined;
}

/** null: unchanged; undefined: changed and restorable; else why it cannot be restored. */
function refusalIfChanged(value: object, content: Content): string | null | undefined {
  return differs(value, content) ? refusal(value, content) : null;
}

// Built-ins whose whole state is their own properties plus the inner content recorded below.
const plainPrototypes = new Set<object | null>([
  null,
  Object.prototype,
  Array.prototype,
  Date.prototype,
  Map.prototype,
  Set.prototype,
  ArrayBuffer.prototype,
  DataView.prototype,
  Object.getPrototypeOf(Uint8Array.prototype) as object, // %TypedArray%.prototype
  ...typedArrayPrototypes(),
  RegExp.prototype, // its only changeable state, lastIndex, is an own property
  Error.prototype,
  Promise.prototype, // settled by its own code, never by the method through the entity
  Number.prototype,
  String.prototype,
  Boolean.prototype,
]);

function typedArrayPrototypes(): object[] {
  const types = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array];
  return [...types, Float32Array, Float64Array, BigInt64Array, BigUint64Array].map((type) => type.prototype as object);
}

const verdicts = new WeakMap<object, string | null>();

/** Why `value`'s class keeps state outside its own properties, if it does. */
function hiddenState(value: object): string | undefined {
  for (let proto = Object.getPrototypeOf(value) as object | null; !plainPrototypes.has(proto); ) {
    const current = proto as object;
    let verdict = verdicts.get(current);
    if (verdict === undefined) {
      verdict = classVerdict(current) ?? null;
      verdicts.set(current, verdict);
    }
    if (verdict !== null) return verdict;
    proto = Object.getPrototypeOf(current) as object | null;
  }
  return undefined;
}

function classVerdict(proto: object): string | undefined {
  const ctor = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value as unknown;
  if (typeof ctor !== 'function') return undefined; // an object used as a prototype: its own properties are all there is
  const name = ctor.name || 'an anonymous class';
  let source: string;
  try {
    source = Function.prototype.toString.call(ctor);
  } catch {
    return `an instance of ${name}, whose class source cannot be read`;
  }
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    // Errors keep their state (message, stack, cause) in own properties.
    return proto instanceof Error ? undefined : `a ${name}, a built-in whose internal state cannot be copied`;
  }
  if (hidesInstanceState(source)) return `an instance of ${name}, which has private fields`;
  return undefined;
}

function contentOf(value: object): Content {
  const extensible = Reflect.isExtensible(value);
  const inner = innerOf(value);
  if (inner?.kind === 'bytes') return { keys: [], descriptors: [], values: [], extensible, inner };
  const array = Array.isArray(value);
  const keys = Object.keys(value);
  // The common case: nothing but enumerable string keys (and an array's length).
  if (
    extensible &&
    Object.getOwnPropertyNames(value).length === keys.length + (array ? 1 : 0) &&
    Object.getOwnPropertySymbols(value).length === 0 &&
    !types.isProxy(value)
  ) {
    const values = new Array<unknown>(keys.length);
    for (let i = 0; i < keys.length; i++) values[i] = (value as Record<string, unknown>)[keys[i] as string];
    if (!array) return { keys, descriptors: undefined, values, extensible, inner };
    // indices first, then length, as Reflect.ownKeys lists them
    values.push((value as unknown[]).length);
    keys.push('length');
    return { keys, descriptors: undefined, values, extensible, inner };
  }
  const all = Reflect.ownKeys(value);
  const descriptors = all.map((key) => Reflect.getOwnPropertyDescriptor(value, key) as PropertyDescriptor);
  return { keys: all, descriptors, values: descriptors.map((d) => d.value), extensible, inner };
}

/** The descriptor key `i` had when recorded. */
function descriptorAt(value: object, content: Content, i: number): PropertyDescriptor {
  const recorded = content.descriptors?.[i];
  if (recorded !== undefined) return recorded;
  const fixedLength = Array.isArray(value) && content.keys[i] === 'length';
  return { value: content.values[i], writable: true, enumerable: !fixedLength, configurable: !fixedLength };
}

function accessorIn(value: object, content: Content): string | undefined {
  const { descriptors } = content;
  if (descriptors === undefined) return undefined;
  for (let i = 0; i < descriptors.length; i++) {
    const descriptor = descriptors[i] as PropertyDescriptor;
    if (descriptor.get !== undefined || descriptor.set !== undefined) return accessorMessage(value, content.keys[i]);
  }
  return undefined;
}

function currentAccessor(value: object): string | undefined {
  for (const key of Reflect.ownKeys(value)) {
    const descriptor = Reflect.getOwnPropertyDescriptor(value, key);
    if (descriptor !== undefined && !('value' in descriptor)) return accessorMessage(value, key);
  }
  return undefined;
}

function accessorMessage(value: object, key: string | symbol | undefined): string {
  return `${describe(value)} has a getter or setter as its own property ${String(key)}, whose state cannot be seen`;
}

function innerOf(value: object): Inner {
  if (value instanceof Date) return { kind: 'date', time: value.getTime() };
  if (value instanceof Map) return { kind: 'map', entries: [...value] };
  if (value instanceof Set) return { kind: 'set', items: [...value] };
  if (ArrayBuffer.isView(value)) {
    return { kind: 'bytes', bytes: new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice() };
  }
  if (value instanceof ArrayBuffer) return { kind: 'bytes', bytes: new Uint8Array(value).slice() };
  return undefined;
}

function differs(value: object, content: Content): boolean {
  if (Reflect.isExtensible(value) !== content.extensible) return true;
  if (content.inner?.kind === 'bytes') return innerDiffers(value, content.inner);
  const keys = Reflect.ownKeys(value);
  if (keys.length !== content.keys.length) return true;
  for (let i = 0; i < keys.length; i++) {
    const key = content.keys[i] as string | symbol;
    if (keys[i] !== key) return true;
    if (!unchanged(Reflect.getOwnPropertyDescriptor(value, key), value, content, i)) return true;
  }
  return innerDiffers(value, content.inner);
}

/** Whether a property is as recorded: its descriptor, or (values only recorded) its value. */
function unchanged(now: PropertyDescriptor | undefined, value: object, content: Content, i: number): boolean {
  if (content.descriptors !== undefined) return sameDescriptor(now, descriptorAt(value, content, i));
  return now !== undefined && 'value' in now && Object.is(now.value, content.values[i]);
}

function sameDescriptor(now: PropertyDescriptor | undefined, was: PropertyDescriptor): boolean {
  return (
    now !== undefined &&
    Object.is(now.value, was.value) &&
    now.get === was.get &&
    now.set === was.set &&
    now.writable === was.writable &&
    now.enumerable === was.enumerable &&
    now.configurable === was.configurable
  );
}

function innerDiffers(value: object, inner: Inner): boolean {
  switch (inner?.kind) {
    case undefined:
      return false;
    case 'date':
      return !Object.is((value as Date).getTime(), inner.time);
    case 'map': {
      const map = value as Map<unknown, unknown>;
      if (map.size !== inner.entries.length) return true;
      let i = 0;
      for (const [key, item] of map) {
        const [wasKey, wasItem] = inner.entries[i++] as readonly [unknown, unknown];
        if (!Object.is(key, wasKey) || !Object.is(item, wasItem)) return true;
      }
      return false;
    }
    case 'set': {
      const set = value as Set<unknown>;
      if (set.size !== inner.items.length) return true;
      let i = 0;
      for (const item of set) if (!Object.is(item, inner.items[i++])) return true;
      return false;
    }
    case 'bytes': {
      const now = bytesOf(value);
      if (now.length !== inner.bytes.length) return true;
      for (let i = 0; i < now.length; i++) if (now[i] !== inner.bytes[i]) return true;
      return false;
    }
  }
}

/** Why `value` cannot take `content` back, if it cannot: checked before anything is changed. */
function refusal(value: object, content: Content): string | undefined {
  const name = describe(value);
  if (!Reflect.isExtensible(value)) {
    if (content.extensible) return `${name} was frozen, sealed or made non-extensible by the method`;
    const now = new Set(Reflect.ownKeys(value));
    if (content.keys.some((key) => !now.has(key))) return `${name} lost a property and cannot take it back`;
  }
  const recorded = new Map(content.keys.map((key, i) => [key, i]));
  for (const key of content.inner?.kind === 'bytes' ? [] : Reflect.ownKeys(value)) {
    const now = Reflect.getOwnPropertyDescriptor(value, key) as PropertyDescriptor;
    const i = recorded.get(key);
    if (i !== undefined && unchanged(now, value, content, i)) continue;
    if (now.configurable) continue;
    // A fixed property can only keep its attributes, and take its old value while it is writable.
    const old =
      i === undefined ? undefined : content.descriptors === undefined ? undefined : descriptorAt(value, content, i);
    const valueOnly = i !== undefined && content.descriptors === undefined && 'value' in now && now.writable === true;
    const sameAttributes =
      old !== undefined &&
      'value' in now &&
      now.writable === true &&
      'value' in old &&
      old.configurable === false &&
      old.enumerable === now.enumerable &&
      old.writable === true;
    if (!valueOnly && !sameAttributes) return `${name} has a property ${String(key)} the method made fixed`;
  }
  if (content.inner?.kind === 'bytes' && bytesOf(value).length !== content.inner.bytes.length) {
    return `${name} was detached or resized`;
  }
  return undefined;
}

/** Puts `content` back into `value`; false when the object refused a change `refusal` did not foresee. */
function restore(value: object, content: Content): boolean {
  let ok = true;
  if (content.inner?.kind !== 'bytes') {
    const keep = new Set(content.keys);
    const keys = Reflect.ownKeys(value);
    // Keys deleted and added again come back in their old order, as the snapshot lists them.
    const reordered = keys.filter((key) => keep.has(key)).some((key, i) => content.keys[i] !== key);
    for (const key of keys) {
      const fixed = Reflect.getOwnPropertyDescriptor(value, key)?.configurable === false;
      if (!keep.has(key) || (reordered && !fixed)) ok = Reflect.deleteProperty(value, key) && ok;
    }
    for (let i = 0; i < content.keys.length; i++) {
      const key = content.keys[i] as string | symbol;
      const now = Reflect.getOwnPropertyDescriptor(value, key);
      if (unchanged(now, value, content, i)) continue;
      // Values only recorded: the property keeps the attributes it has, or gets plain ones back.
      const wanted =
        content.descriptors === undefined && now !== undefined && 'value' in now
          ? { value: content.values[i] }
          : descriptorAt(value, content, i);
      ok = Reflect.defineProperty(value, key, wanted) && ok;
    }
  }
  const { inner } = content;
  switch (inner?.kind) {
    case 'date':
      (value as Date).setTime(inner.time);
      break;
    case 'map': {
      const map = value as Map<unknown, unknown>;
      map.clear();
      for (const [key, item] of inner.entries) map.set(key, item);
      break;
    }
    case 'set': {
      const set = value as Set<unknown>;
      set.clear();
      for (const item of inner.items) set.add(item);
      break;
    }
    case 'bytes':
      bytesOf(value).set(inner.bytes);
      break;
    default:
      break;
  }
  if (content.extensible !== Reflect.isExtensible(value)) ok = false;
  return ok;
}

function bytesOf(value: object): Uint8Array {
  return ArrayBuffer.isView(value)
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    : new Uint8Array(value as ArrayBuffer);
}

function describe(value: object): string {
  if (Array.isArray(value)) return 'an array in it';
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? `a ${name} in it` : 'an object in it';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
