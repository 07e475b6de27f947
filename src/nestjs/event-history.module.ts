import {
  type DynamicModule,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR, HttpAdapterHost, ModuleRef } from '@nestjs/core';
import type { HistoryWriter } from '../history/entry.js';
import { onEntryCommitted } from '../pipeline/hooks.js';
import { setDefaultHistoryWriter, setHistoryWriterResolver } from '../pipeline/writer.js';
import { registerSessionProvider } from '../transactions/session-provider.js';
import { registerUnitOfWork } from '../unit-of-work/contract.js';
import { type TypeOrmDataSourceLike, typeormUnitOfWork } from '../unit-of-work/typeorm.js';
import { EventHistoryExceptionFilter } from './exception-filter.js';
import { HistoryContextInterceptor } from './history-context.interceptor.js';
import {
  EVENT_HISTORY_OPTIONS,
  EVENT_HISTORY_SETUP,
  EVENT_HISTORY_STORE,
  type EventEmitterLike,
  type EventHistoryModuleAsyncOptions,
  type EventHistoryModuleOptions,
  type TransactionHostLike,
} from './options.js';

/** The ModuleRefs of the running applications (several in one process in tests), newest first. */
const running: ModuleRef[] = [];

function resolveThroughNest(writerClass: abstract new (...args: never[]) => unknown): unknown {
  for (const moduleRef of running) {
    try {
      return moduleRef.get(writerClass, { strict: false });
    } catch {
      // Not a provider of this application: try the next, then the service's own properties.
    }
  }
  return undefined;
}

/**
 * Connects the library to the application while it runs: `@HistoryTracked(SomeClass)` resolves
 * its writer through DI (`ModuleRef`, non-strict, so from any module), and, with a
 * `transactionHost`, decorated calls without a session join the active `@Transactional()`.
 * Undone at shutdown.
 *
 * ```ts
 * app.get(EventHistoryBinding); // created by EventHistoryModule, nothing to call
 * ```
 */
export class EventHistoryBinding implements OnModuleInit, OnApplicationShutdown {
  readonly #moduleRef: ModuleRef;
  readonly #options: EventHistoryModuleOptions;
  #unbind: (() => void)[] = [];

  constructor(moduleRef: ModuleRef, options: EventHistoryModuleOptions) {
    this.#moduleRef = moduleRef;
    this.#options = options;
  }

  async onModuleInit(): Promise<void> {
    const moduleRef = this.#moduleRef;
    running.unshift(moduleRef);
    if (running.length === 1) setHistoryWriterResolver(resolveThroughNest);
    this.#unbind.push(() => {
      running.splice(running.indexOf(moduleRef), 1);
      if (running.length === 0) setHistoryWriterResolver(undefined);
    });
    const host = this.#transactionHost();
    if (host !== undefined) {
      this.#unbind.push(registerSessionProvider(() => (host.isTransactionActive() ? host.tx : undefined)));
    }
    await this.#unitOfWork();
    if (this.#options.committedEvents) await this.#publishCommitted();
  }

  /** The default store and the unit of work on the data source (see `dataSource`, `track`, `store`). */
  async #unitOfWork(): Promise<void> {
    const { track } = this.#options;
    const { dataSource, store } = this.#moduleRef.get<HistorySetup>(EVENT_HISTORY_SETUP, { strict: false });
    if (store !== undefined) {
      setDefaultHistoryWriter(store);
      this.#unbind.push(() => setDefaultHistoryWriter(undefined));
    }
    if (dataSource !== undefined) {
      if (track === undefined || track.length === 0) {
        throw new TypeError(
          'EventHistoryModule: dataSource was given without track. Name the entity classes to version and record: ' +
            'track: [ArticleEntity, UserEntity].',
        );
      }
      this.#unbind.push(registerUnitOfWork(typeormUnitOfWork(dataSource, { track })));
    }
  }

  /** Emits each committed entry on the event bus (see `committedEvents`). */
  async #publishCommitted(): Promise<void> {
    const settings = this.#options.committedEvents === true ? {} : this.#options.committedEvents || {};
    const event = settings.event ?? 'event-history.committed';
    let emitter: EventEmitterLike;
    const given = settings.emitter;
    if (given !== undefined && typeof given !== 'function') emitter = given;
    else {
      const token = given ?? (await eventEmitter2());
      emitter = this.#moduleRef.get(token, { strict: false });
    }
    this.#unbind.push(
      onEntryCommitted((entry) => {
        emitter.emit(event, entry);
        emitter.emit(`${event}.${entry.entityType}`, entry);
      }),
    );
  }

  onApplicationShutdown(): void {
    for (const unbind of this.#unbind.splice(0).reverse()) unbind();
  }

  #transactionHost(): TransactionHostLike | undefined {
    const host = this.#options.transactionHost;
    if (typeof host !== 'function') return host;
    return this.#moduleRef.get(host, { strict: false });
  }
}

function isDataSource(value: object): value is TypeOrmDataSourceLike {
  return typeof (value as { getMetadata?: unknown }).getMetadata === 'function' && 'manager' in value;
}

/** The resolved `dataSource` and `store` options. */
interface HistorySetup {
  readonly dataSource: TypeOrmDataSourceLike | undefined;
  readonly store: HistoryWriter | undefined;
}

/**
 * The provider of the resolved data source and store: the `DataSource` class given as
 * `dataSource` is injected (so Nest creates TypeORM's first), and the store built on it.
 */
function setupProvider(dataSourceOption: EventHistoryModuleOptions['dataSource'] | 'async'): Provider {
  const token =
    dataSourceOption === undefined || dataSourceOption === 'async' || isDataSource(dataSourceOption)
      ? undefined
      : dataSourceOption;
  return {
    provide: EVENT_HISTORY_SETUP,
    inject: token === undefined ? [EVENT_HISTORY_OPTIONS] : [EVENT_HISTORY_OPTIONS, token],
    useFactory: async (options: EventHistoryModuleOptions, injected?: TypeOrmDataSourceLike): Promise<HistorySetup> => {
      const given = options.dataSource;
      const dataSource = injected ?? (given !== undefined && isDataSource(given) ? given : undefined);
      if (given !== undefined && dataSource === undefined) {
        throw new TypeError(
          'EventHistoryModule.forRootAsync: pass the DataSource instance as dataSource (inject it into useFactory).',
        );
      }
      const option = options.store;
      let store: HistoryWriter | undefined;
      if (typeof option === 'function') {
        if (dataSource === undefined) {
          throw new TypeError(
            'EventHistoryModule: store is a function of the dataSource, but no dataSource was given.',
          );
        }
        store = option(dataSource as TypeOrmDataSourceLike & { readonly driver: object });
      } else store = option;
      if (store !== undefined && options.ensureSchema) {
        await (store as { ensureSchema?: () => Promise<void> }).ensureSchema?.();
      }
      return { dataSource, store };
    },
  };
}

/** `EventEmitter2`, loaded only when `committedEvents` asks for it (an optional peer). */
async function eventEmitter2(): Promise<abstract new (...args: never[]) => EventEmitterLike> {
  try {
    const module = (await import('@nestjs/event-emitter')) as { EventEmitter2: abstract new () => EventEmitterLike };
    return module.EventEmitter2;
  } catch (error) {
    throw new TypeError(
      'EventHistoryModule committedEvents needs @nestjs/event-emitter (npm install @nestjs/event-emitter, and import ' +
        'EventEmitterModule.forRoot()), or an emitter: committedEvents: { emitter }.',
      { cause: error },
    );
  }
}

Injectable()(EventHistoryBinding);
Inject(ModuleRef)(EventHistoryBinding, undefined, 0);
Inject(EVENT_HISTORY_OPTIONS)(EventHistoryBinding, undefined, 1);

/**
 * The NestJS module of event-history, global: import it once in the root module. It resolves
 * `@HistoryTracked(SomeHistoryService)` through DI, fills each request's history entries with
 * its actor (via {@link HistoryContextInterceptor}), answers `VersionConflictError` with HTTP 409
 * (via {@link EventHistoryExceptionFilter}), and lets decorated calls join
 * `@nestjs-cls/transactional` transactions when given their `TransactionHost`.
 *
 * ```ts
 * @Module({
 *   imports: [EventHistoryModule.forRoot({ actor: (ctx) => ctx.switchToHttp().getRequest().user?.id })],
 *   providers: [OrderService, OrderHistoryService],
 * })
 * export class AppModule {}
 * ```
 */
// biome-ignore lint/complexity/noStaticOnlyClass: a Nest module is a class, configured through static forRoot methods.
export class EventHistoryModule {
  /**
   * The module with options given directly.
   *
   * ```ts
   * EventHistoryModule.forRoot({ actor: (ctx) => ctx.switchToHttp().getRequest().headers['x-user'] });
   * ```
   */
  static forRoot(options: EventHistoryModuleOptions = {}): DynamicModule {
    return dynamicModule({ provide: EVENT_HISTORY_OPTIONS, useValue: options }, options, [], options.dataSource);
  }

  /**
   * The module with options from a factory that may inject other providers.
   *
   * ```ts
   * EventHistoryModule.forRootAsync({ inject: [Config], useFactory: (config: Config) => ({ actor: config.actor }) });
   * ```
   */
  static forRootAsync(options: EventHistoryModuleAsyncOptions): DynamicModule {
    const provider: Provider = {
      provide: EVENT_HISTORY_OPTIONS,
      useFactory: options.useFactory as (...args: unknown[]) => EventHistoryModuleOptions,
      inject: options.inject ?? [],
    };
    return dynamicModule(provider, options, options.imports ?? [], 'async');
  }
}

Global()(EventHistoryModule);
Module({})(EventHistoryModule);

function dynamicModule(
  optionsProvider: Provider,
  switches: { readonly interceptor?: boolean; readonly filter?: boolean },
  imports: NonNullable<DynamicModule['imports']>,
  dataSource: EventHistoryModuleOptions['dataSource'] | 'async',
): DynamicModule {
  const providers: Provider[] = [
    optionsProvider,
    setupProvider(dataSource),
    {
      provide: EVENT_HISTORY_STORE,
      useFactory: (setup: HistorySetup) => setup.store ?? null,
      inject: [EVENT_HISTORY_SETUP],
    },
    EventHistoryBinding,
    HistoryContextInterceptor,
  ];
  if (switches.interceptor !== false) {
    providers.push({
      provide: APP_INTERCEPTOR,
      useFactory: (options: EventHistoryModuleOptions) => new HistoryContextInterceptor(options),
      inject: [EVENT_HISTORY_OPTIONS],
    });
  }
  if (switches.filter !== false) {
    providers.push({
      provide: APP_FILTER,
      useFactory: (adapterHost: HttpAdapterHost) => new EventHistoryExceptionFilter(undefined, adapterHost),
      inject: [HttpAdapterHost],
    });
  }
  return {
    module: EventHistoryModule,
    global: true,
    imports,
    providers,
    exports: [EVENT_HISTORY_OPTIONS, EVENT_HISTORY_STORE, HistoryContextInterceptor],
  };
}
