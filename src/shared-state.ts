/**
 * @internal State that must be one per process, whatever copies of the library are loaded (the
 * ESM and the CommonJS build side by side, or two installed versions): session locks, pending
 * statements, registries, stamps. Each piece lives on `globalThis` under a `Symbol.for` key, so
 * every copy that asks for `name` gets the object the first copy created.
 *
 * ```ts
 * const locks = shared('session-locks', () => new WeakMap<object, Lock>());
 * ```
 */
export function shared<T>(name: string, create: () => T): T {
  const key = Symbol.for(`event-history:${name}`);
  const holder = globalThis as unknown as Record<symbol, T | undefined>;
  const existing = holder[key];
  if (existing !== undefined) return existing;
  const made = create();
  Object.defineProperty(globalThis, key, { value: made, enumerable: false, configurable: false, writable: false });
  return made;
}
