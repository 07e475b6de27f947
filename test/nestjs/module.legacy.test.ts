import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { Controller, Get, Inject, Injectable, Module, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ClsPluginTransactional, Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import type Database from 'better-sqlite3';
import { ClsModule } from 'nestjs-cls';
import { DataSource, type EntityManager, EntitySchema } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  MemoryHistoryStore,
  MissingSessionError,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { EventHistoryModule } from '../../src/nestjs/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';

const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`;

class Item {
  id!: string;
  name!: string;
  version?: number;
  timestamp?: Date;
}

const ItemSchema = new EntitySchema<Item>({
  name: 'Item',
  target: Item,
  tableName: `items_${suffix}`,
  columns: {
    id: { type: 'text', primary: true },
    name: { type: 'text' },
    version: { type: 'integer' },
    timestamp: { type: 'datetime' },
  },
});

/** A history service of the application's own, known to Nest only as a provider. */
@Injectable()
class ItemHistory implements HistoryWriter {
  readonly entries: HistoryEntry[] = [];
  readonly transactional = false;
  async save(entry: HistoryEntry): Promise<void> {
    this.entries.push(entry);
  }
}

/** Resolved through DI although no property of the service holds it. */
@Injectable()
@Versioned()
@HistoryTracked(ItemHistory)
class PlainItems {
  async save(_item: Item): Promise<void> {}
}

@Controller('items')
class ItemsController {
  constructor(@Inject(PlainItems) private readonly items: PlainItems) {}

  @Post()
  async create(): Promise<Item> {
    const item = Object.assign(new Item(), { id: 'i-1', name: 'first' });
    await this.items.save(item);
    return item;
  }

  @Get('stale')
  async stale(): Promise<never> {
    throw new VersionConflictError('Item', 'i-9', 4);
  }

  @Get('broken')
  async broken(): Promise<never> {
    throw new MissingSessionError('save');
  }
}

describe('EventHistoryModule over HTTP', () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        EventHistoryModule.forRootAsync({
          inject: ['ACTOR_HEADER'],
          useFactory: (header: string) => ({
            actor: (context) =>
              context.switchToHttp().getRequest<{ headers: Record<string, string> }>().headers[header],
            context: () => ({ reason: 'api' }),
          }),
          imports: [ActorConfig],
        }),
      ],
      controllers: [ItemsController],
      providers: [PlainItems, ItemHistory],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
  });

  afterAll(async () => {
    await app.close();
  });

  const url = (path: string) => `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}${path}`;

  it('resolves @HistoryTracked(SomeClass) through DI and writes the request’s actor from forRootAsync options', async () => {
    const response = await fetch(url('/items'), { method: 'POST', headers: { 'x-actor': 'dora' } });
    expect(response.status).toBe(201);
    const history = app.get(ItemHistory);
    expect(history.entries).toHaveLength(1);
    expect(history.entries[0]).toMatchObject({
      entityType: 'Item',
      entityId: 'i-1',
      version: 1,
      actor: 'dora',
      reason: 'api',
    });
  });

  it('answers a VersionConflictError with 409 in an app built from a testing module', async () => {
    const response = await fetch(url('/items/stale'));
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: 'VERSION_CONFLICT', entityId: 'i-9', expectedVersion: 4 });
  });

  it('leaves a library error that is not the client’s fault a 500 without its message', async () => {
    const response = await fetch(url('/items/broken'));
    expect(response.status).toBe(500);
    expect(JSON.stringify(await response.json())).not.toContain('session');
  });
});

@Module({ providers: [{ provide: 'ACTOR_HEADER', useValue: 'x-actor' }], exports: ['ACTOR_HEADER'] })
class ActorConfig {}

@Module({
  providers: [
    {
      provide: DataSource,
      useFactory: () =>
        new DataSource({
          type: 'better-sqlite3',
          database: ':memory:',
          entities: [ItemSchema],
          synchronize: true,
        }).initialize(),
    },
    {
      provide: SqliteHistoryStore,
      useFactory: async (dataSource: DataSource) => {
        const { databaseConnection } = dataSource.driver as unknown as { databaseConnection: Database.Database };
        const store = new SqliteHistoryStore(databaseConnection, { table: `history_${suffix}` });
        await store.ensureSchema();
        return store;
      },
      inject: [DataSource],
    },
  ],
  exports: [DataSource, SqliteHistoryStore],
})
class DatabaseModule {}

@Injectable()
@Versioned()
@HistoryTracked(SqliteHistoryStore, { entityType: 'Item' })
class ItemRepository {
  constructor(@Inject(TransactionHost) private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>) {}

  /** No session parameter: the method writes through the nestjs-cls transaction. */
  async save(item: Item): Promise<void> {
    await this.txHost.tx.insert(Item, item);
  }
}

@Injectable()
class ItemWorkflow {
  constructor(@Inject(ItemRepository) private readonly items: ItemRepository) {}

  @Transactional()
  async createTwo(first: Item, second: Item, fail: boolean): Promise<void> {
    await this.items.save(first);
    await this.items.save(second);
    if (fail) throw new Error('payment declined');
  }
}

describe('EventHistoryModule with @nestjs-cls/transactional', () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule,
        ClsModule.forRoot({
          global: true,
          plugins: [
            new ClsPluginTransactional({
              imports: [DatabaseModule],
              adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: DataSource }),
            }),
          ],
        }),
        EventHistoryModule.forRoot({ transactionHost: TransactionHost }),
      ],
      providers: [ItemRepository, ItemWorkflow],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  const stored = async (id: string) => {
    const manager: EntityManager = app.get(DataSource).manager;
    return {
      row: await manager.findOneBy(Item, { id }),
      history: await app.get(SqliteHistoryStore).list('Item', id),
    };
  };

  it('a decorated call without a session inside @Transactional() writes the row and its history in that transaction', async () => {
    await app.get(ItemWorkflow).createTwo({ id: 'c-1', name: 'a' }, { id: 'c-2', name: 'b' }, false);
    const first = await stored('c-1');
    expect(first.row).toMatchObject({ id: 'c-1', version: 1 });
    expect(first.history.map((e) => e.version)).toEqual([1]);
    const second = await stored('c-2');
    expect(second.history[0]?.txId).toBe(first.history[0]?.txId);
  });

  it('a @Transactional() method that fails afterwards rolls back the rows and the history of the calls inside it', async () => {
    await expect(
      app.get(ItemWorkflow).createTwo({ id: 'r-1', name: 'a' }, { id: 'r-2', name: 'b' }, true),
    ).rejects.toThrow('payment declined');
    expect(await stored('r-1')).toEqual({ row: null, history: [] });
    expect(await stored('r-2')).toEqual({ row: null, history: [] });
  });

  it('outside any @Transactional() a call without a session is still a MissingSessionError', async () => {
    await expect(app.get(ItemRepository).save({ id: 'n-1', name: 'x' })).rejects.toBeInstanceOf(MissingSessionError);
  });
});

it('a history class that is neither a provider nor a property of the service is a DecoratorError naming it', async () => {
  @Versioned()
  @HistoryTracked(MemoryHistoryStore)
  class Unwired {
    async save(_item: Item): Promise<void> {}
  }
  const moduleRef = await Test.createTestingModule({ imports: [EventHistoryModule.forRoot()] }).compile();
  const app = await moduleRef.createNestApplication({ logger: false }).init();
  try {
    await expect(new Unwired().save({ id: 'u-1', name: 'x' })).rejects.toThrow(/MemoryHistoryStore/);
  } finally {
    await app.close();
  }
});

it('with two applications in one process, closing one leaves the other resolving its own history providers', async () => {
  const start = async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [EventHistoryModule.forRoot()],
      providers: [PlainItems, ItemHistory],
    }).compile();
    return moduleRef.createNestApplication({ logger: false }).init();
  };
  const first = await start();
  const second = await start();
  await first.close();
  try {
    await second.get(PlainItems).save({ id: 'two-apps', name: 'x' });
    expect(second.get(ItemHistory).entries.map((e) => e.entityId)).toEqual(['two-apps']);
    expect(first.get(ItemHistory).entries).toEqual([]);
  } finally {
    await second.close();
  }
});
