import { applyDecoration } from './modes.js';
import type { VersionedOptions } from './options.js';
import type { ClassOrMethodDecorator, ServiceShape } from './types.js';

/**
 * Stamps every call's entity with a new version and timestamp and runs the call in the
 * session's transaction. On a class it wraps `save` (create) and `update` (update), or the
 * methods listed in `options.methods`; on a method, that method, its operation inferred from
 * its name or given as `options.op`.
 *
 * ```ts
 * @Versioned()
 * @HistoryTracked(OrderHistoryService)
 * export class OrderService {
 *   async save(order: Order, session?: ClientSession) { await this.orders.insertOne(order, { session }); }
 *   async update(order: Order, session?: ClientSession) {
 *     return this.orders.updateOne({ _id: order._id, version: expectedVersion(order) }, { $set: order }, { session });
 *   }
 * }
 * ```
 */
export function Versioned<M extends string = never>(
  options: VersionedOptions<M> = {},
): ClassOrMethodDecorator<ServiceShape<M>> {
  const settings: VersionedOptions = Object.freeze({ ...options });
  const decorator = (...args: unknown[]): unknown =>
    applyDecoration(
      '@Versioned',
      settings.methods,
      (level, op) => ({
        versioned: { level, op: settings.op ?? op, options: settings },
      }),
      args,
    );
  return decorator as ClassOrMethodDecorator<ServiceShape<M>>;
}
