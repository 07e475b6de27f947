import { DecoratorError } from '../errors.js';
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
 * ```
 */
export function HistoryTracked<M extends string = never>(
  source: HistorySource,
  options: HistoryTrackedOptions<M> = {},
): ClassOrMethodDecorator<ServiceShape<M>> {
  const usable =
    typeof source === 'string' ||
    typeof source === 'function' ||
    (typeof source === 'object' && source !== null && typeof source.save === 'function');
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
