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
 * What the module emits committed entries through: `EventEmitter2`, or anything with `emit`.
 *
 * ```ts
 * const emitter: EventEmitterLike = app.get(EventEmitter2);
 * ```
 */
export interface EventEmitterLike {
  emit(event: string, ...values: unknown[]): unknown;
}

/**
 * Options of the module's `committedEvents`.
 *
 * ```ts
 * EventHistoryModule.forRoot({ committedEvents: { event: 'history.committed' } });
 * ```
 */
export interface CommittedEventsOptions {
  /** The emitter, as a class (resolved through DI) or an instance. Default `EventEmitter2` from `@nestjs/event-emitter`. */
  readonly emitter?: EventEmitterLike | (abstract new (...args: never[]) => EventEmitterLike);
  /** The event name; each entry is also emitted as `<event>.<EntityType>`. Default `event-history.committed`. */
  readonly event?: string;
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
  /**
   * Publishes each history entry on the Nest event bus once its transaction has committed (never
   * for a rolled-back one), as `event-history.committed` and `event-history.committed.<EntityType>`
   * (or `<event>` and `<event>.<EntityType>`), through `@nestjs/event-emitter`'s `EventEmitter2`.
   * `true` resolves `EventEmitter2` from the application (import `EventEmitterModule.forRoot()`);
   * or give the `emitter` (a class resolved through DI, or an instance). See `onEntryCommitted`.
   */
  readonly committedEvents?: boolean | CommittedEventsOptions;
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
