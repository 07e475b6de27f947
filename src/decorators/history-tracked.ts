import { DecoratorError } from '../errors.js';
import { DEFAULT_HISTORY_SOURCE } from '../pipeline/writer.js';
import { applyDecoration } from './modes.js';
import type { HistorySource, HistoryTrackedOptions } from './options.js';
import type { ClassOrMethodDecorator, ServiceShape } from './types.js';

/**
 * Writes a history entry for every call, through the writer `source` names and with the
 * session of the call, in the same transaction as the entity write. Placement is as for
 * `@Versioned`; together they make one wrapper per method.
 *
 * ```ts
 * @HistoryTracked('history', { redact: ['card.number'] })  // the service's `history` property
 * @HistoryTracked(OrderHistoryService)                        // a provider, through Nest DI
 * @HistoryTracked(new MemoryHistoryStore())                   // a writer object
 * @HistoryTracked(store, { chain: true, onUnchanged: 'skip', schemaVersion: 2 }) // tamper evidence, no-op updates skipped
 * @HistoryTracked()                                           // the module's `store` (setDefaultHistoryWriter)
 * @HistoryTracked({ op: 'update' })                           // the same, for a method whose name says no operation
 * ```
 */
export function HistoryTracked<M extends string = never>(
  options?: HistoryTrackedOptions<M>,
): ClassOrMethodDecorator<ServiceShape<M>>;
export function HistoryTracked<M extends string = never>(
  source: HistorySource,
  options?: HistoryTrackedOptions<M>,
): ClassOrMethodDecorator<ServiceShape<M>>;
export function HistoryTracked<M extends string = never>(
  sourceOrOptions?: HistorySource | HistoryTrackedOptions<M>,
  given: HistoryTrackedOptions<M> = {},
): ClassOrMethodDecorator<ServiceShape<M>> {
  // `@HistoryTracked()` and `@HistoryTracked({ op })`: the default store (the NestJS module's `store`).
  const onlyOptions = isOptions(sourceOrOptions);
  const source = ((onlyOptions ? undefined : sourceOrOptions) ?? DEFAULT_HISTORY_SOURCE) as HistorySource;
  const options: HistoryTrackedOptions<M> = onlyOptions ? (sourceOrOptions as HistoryTrackedOptions<M>) : given;
  const usable =
    typeof source === 'string' ||
    typeof source === 'function' ||
    (typeof source === 'object' && source !== null && typeof (source as { save?: unknown }).save === 'function');
  if (!usable) {
    throw new DecoratorError(
      '@HistoryTracked needs a history source: a property name, a class, a function (service) => writer, or an object with save(entry, session).',
    );
  }
  const settings: HistoryTrackedOptions = Object.freeze({ ...options });
  const decorator = (...args: unknown[]): unknown =>
    applyDecoration(
      '@HistoryTracked',
      settings.methods,
      (level, op) => ({
        tracked: { level, op: settings.op ?? op, source, options: settings },
      }),
      args,
    );
  return decorator as ClassOrMethodDecorator<ServiceShape<M>>;
}

const OPTION_KEYS = new Set([
  'op',
  'methods',
  'versionField',
  'timestampField',
  'idField',
  'sessionIndex',
  'entityIndex',
  'requireSession',
  'conflict',
  'retries',
  'entityType',
  'ignore',
  'redact',
  'metadata',
  'map',
  'maxSnapshotBytes',
  'clock',
  'onUnchanged',
  'chain',
  'schemaVersion',
]);

/** A plain object of option keys only (a writer has `save`; an object with other keys is a mistake). */
function isOptions(value: unknown): boolean {
  if (value === undefined || value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.keys(value).every((key) => OPTION_KEYS.has(key));
}
