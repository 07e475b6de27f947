import type { ExecutionContext, InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common';
import type { HistoryContext } from '../context.js';

/**
 * The part of `@nestjs-cls/transactional`'s `TransactionHost` the module uses: whether a
 * `@Transactional()` transaction is active, and its transaction object (an `EntityManager`, a
 * Prisma transaction client, a Knex transaction…).
 *
 * ```ts
 * const host: TransactionHostLike = TransactionHost.getInstance();
 * ```
 */
export interface TransactionHostLike {
  isTransactionActive(): boolean;
  readonly tx: unknown;
}

/**
 * Options of {@link EventHistoryModule.forRoot}.
 *
 * ```ts
 * EventHistoryModule.forRoot({
 *   actor: (context) => context.switchToHttp().getRequest().headers['x-user-id'],
 *   transactionHost: TransactionHost,
 * });
 * ```
 */
export interface EventHistoryModuleOptions {
  /**
   * Who handles the request: written as `actor` into every history entry of the request (through
   * the module's {@link HistoryContextInterceptor}). `undefined` leaves entries without actor.
   */
  readonly actor?: (context: ExecutionContext) => string | undefined;
  /** `reason` and `metadata` of the request's entries, beside the actor. */
  readonly context?: (context: ExecutionContext) => Omit<HistoryContext, 'actor'> | undefined;
  /**
   * `@nestjs-cls/transactional` interop: the `TransactionHost` class (resolved through DI) or an
   * instance. A decorated method called without a session inside an active `@Transactional()`
   * then runs in (joins) that transaction.
   */
  readonly transactionHost?: TransactionHostLike | (abstract new (...args: never[]) => TransactionHostLike);
  /** Registers {@link HistoryContextInterceptor} for every route (default `true`). */
  readonly interceptor?: boolean;
  /** Registers {@link EventHistoryExceptionFilter} for every route (default `true`). */
  readonly filter?: boolean;
}

/**
 * Options of {@link EventHistoryModule.forRootAsync}: the options come from a factory with
 * injected dependencies. `interceptor` and `filter` are decided up front, since they add providers.
 *
 * ```ts
 * EventHistoryModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ actor: (ctx) => actorFrom(ctx, config) }),
 * });
 * ```
 */
export interface EventHistoryModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  readonly useFactory: (...args: never[]) => EventHistoryModuleOptions | Promise<EventHistoryModuleOptions>;
  readonly inject?: (InjectionToken | OptionalFactoryDependency)[];
  readonly interceptor?: boolean;
  readonly filter?: boolean;
}

/**
 * The injection token of the module's resolved {@link EventHistoryModuleOptions}.
 *
 * ```ts
 * constructor(@Inject(EVENT_HISTORY_OPTIONS) options: EventHistoryModuleOptions) {}
 * ```
 */
export const EVENT_HISTORY_OPTIONS: unique symbol = Symbol.for('event-history:nestjs-options');
