import type { ExecutionContext, InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common';
import type { HistoryContext } from '../context.js';
import type { HistoryWriter } from '../history/entry.js';
import type { TrackedType } from '../unit-of-work/contract.js';
import type { TypeOrmDataSourceLike } from '../unit-of-work/typeorm.js';

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
 *   dataSource: DataSource,
 *   track: [ArticleEntity, { entity: UserEntity, redact: ['password'] }],
 *   store: (dataSource) => typeormHistoryStore(dataSource),
 *   actor: (context) => context.switchToHttp().getRequest().headers['x-user-id'],
 * });
 * ```
 */
export interface EventHistoryModuleOptions {
  /**
   * The TypeORM `DataSource` decorated methods given no session run on, as one unit of work each
   * (see `typeormUnitOfWork`): the `DataSource` class (resolved through DI, as `TypeOrmModule`
   * provides it) or an instance. Needs `track`.
   */
  readonly dataSource?: TypeOrmDataSourceLike | (abstract new (...args: never[]) => TypeOrmDataSourceLike);
  /** The entity classes whose writes in a unit of work are versioned and recorded. */
  readonly track?: readonly TrackedType[];
  /**
   * The history store of `@HistoryTracked()` given no source: a store, or a function that builds
   * one from the resolved `dataSource` (`(ds) => typeormHistoryStore(ds)`).
   */
  readonly store?: HistoryWriter | ((dataSource: TypeOrmDataSourceLike & { readonly driver: object }) => HistoryWriter);
  /** Runs the store's `ensureSchema()` at start-up (default `false`: create the table in a migration). */
  readonly ensureSchema?: boolean;
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

/**
 * The injection token of the module's `store` (built on the data source when `store` is a
 * function), to read history back in a controller: `null` when no store was given.
 *
 * ```ts
 * constructor(@Inject(EVENT_HISTORY_STORE) private readonly history: PostgresHistoryStore) {}
 * ```
 */
export const EVENT_HISTORY_STORE: unique symbol = Symbol.for('event-history:nestjs-store');

/** @internal The token of the resolved data source and store. */
export const EVENT_HISTORY_SETUP: unique symbol = Symbol.for('event-history:nestjs-setup');
