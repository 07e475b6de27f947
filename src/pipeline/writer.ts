import type { HistorySource } from '../decorators/options.js';
import { DecoratorError } from '../errors.js';
import type { HistoryWriter } from '../history/entry.js';
import { shared } from '../shared-state.js';

/**
 * Finds the provider for a history class; the NestJS module registers one backed by ModuleRef.
 * Returns `undefined` when it does not know the class.
 */
export type HistoryWriterResolver = (writerClass: abstract new (...args: never[]) => unknown) => unknown;

const RESOLVER_KEY = Symbol.for('event-history:writer-resolver');
const holder = globalThis as { [RESOLVER_KEY]?: HistoryWriterResolver | undefined };

/**
 * Sets (or, with `undefined`, clears) how `@HistoryTracked(SomeClass)` finds its instance
 * before it looks through the service's properties.
 *
 * ```ts
 * setHistoryWriterResolver((cls) => moduleRef.get(cls, { strict: false }));
 * ```
 */
export function setHistoryWriterResolver(resolver: HistoryWriterResolver | undefined): void {
  holder[RESOLVER_KEY] = resolver;
}

const defaults = shared('default-history-writer', () => ({ writer: undefined as HistoryWriter | undefined }));

/**
 * Sets (or, with `undefined`, clears) the writer of `@HistoryTracked()` given no source: the
 * NestJS module sets its `store` option.
 *
 * ```ts
 * setDefaultHistoryWriter(new PostgresHistoryStore(pool));
 * ```
 */
export function setDefaultHistoryWriter(writer: HistoryWriter | undefined): void {
  defaults.writer = writer;
}

/** @internal The source of `@HistoryTracked()`: the default writer, looked up at each call. */
export const DEFAULT_HISTORY_SOURCE = (): HistoryWriter => {
  if (defaults.writer !== undefined) return defaults.writer;
  throw new DecoratorError(
    '@HistoryTracked() was given no history source and no default store is set. Pass the store to ' +
      'EventHistoryModule.forRoot({ store }) (or setDefaultHistoryWriter(store)), or name a source: @HistoryTracked(store).',
  );
};

const byClass = shared('writers-by-class', () => new WeakMap<object, WeakMap<object, HistoryWriter>>());

export function resolveWriter(source: HistorySource, service: object, method: string): HistoryWriter {
  if (typeof source === 'string') {
    return checked((service as Record<string, unknown>)[source], `property '${source}' of ${method}'s service`);
  }
  if (typeof source === 'function') {
    if (isClass(source)) return resolveClass(source as abstract new (...args: never[]) => unknown, service, method);
    return checked((source as (service: object) => unknown)(service), `the history source function of ${method}`);
  }
  return checked(source, `the history writer given to ${method}`);
}

function resolveClass(
  writerClass: abstract new (...args: never[]) => unknown,
  service: object,
  method: string,
): HistoryWriter {
  const cache = byClass.get(writerClass) ?? new WeakMap<object, HistoryWriter>();
  const hit = cache.get(service);
  if (hit) return hit;
  const fromResolver = holder[RESOLVER_KEY]?.(writerClass);
  const found = fromResolver ?? findProperty(writerClass, service, method);
  const writer = checked(found, `the ${writerClass.name} instance used by ${method}`);
  cache.set(service, writer);
  byClass.set(writerClass, cache);
  return writer;
}

function findProperty(
  writerClass: abstract new (...args: never[]) => unknown,
  service: object,
  method: string,
): unknown {
  const matches = Object.keys(service).filter(
    (key) => (service as Record<string, unknown>)[key] instanceof writerClass,
  );
  if (matches.length === 1) return (service as Record<string, unknown>)[matches[0] as string];
  throw new DecoratorError(
    matches.length === 0
      ? `${method} tracks history with ${writerClass.name}, but no provider resolver knows it and no property of the service holds one. ` +
          `Inject a ${writerClass.name} into the service's constructor, import EventHistoryModule, or pass the property name instead.`
      : `${method} tracks history with ${writerClass.name}, and the properties ${matches.join(', ')} all hold one. ` +
          'Pass the property name (a string) to @HistoryTracked to choose.',
  );
}

function checked(writer: unknown, what: string): HistoryWriter {
  if (writer !== null && typeof writer === 'object' && typeof (writer as HistoryWriter).save === 'function') {
    return writer as HistoryWriter;
  }
  throw new DecoratorError(
    `${what} is ${writer === undefined ? 'undefined' : 'not a history writer'}: it needs a save(entry, session) method. ` +
      'Set it to a history writer (a built-in store such as PostgresHistoryStore, or your own object with save).',
  );
}

// An arrow or plain function is a factory `(service) => writer`; a class (or an ES5 constructor
// with prototype methods) names the writer's type.
function isClass(fn: object): boolean {
  if (/^class[\s{]/.test(Function.prototype.toString.call(fn))) return true;
  const proto = (fn as { prototype?: object }).prototype;
  return proto !== undefined && Object.getOwnPropertyNames(proto).length > 1;
}
