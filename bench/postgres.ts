import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { type INestApplicationContext, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClsPluginTransactional,
  Transactional,
  type TransactionalAdapter,
  TransactionHost,
} from '@nestjs-cls/transactional';
import { ClsModule } from 'nestjs-cls';
import pg from 'pg';
import { expectedVersion, HistoryTracked, registerTransactionAdapter, Versioned } from '../src/index.js';
import { createPgAdapter, PostgresHistoryStore } from '../src/postgres/index.js';
import { interleave, type PairResult } from './stats.js';

export interface Order {
  id: string;
  customer: string;
  total: number;
  lines: { sku: string; qty: number; price: number }[];
  version: number;
  timestamp?: Date;
}

export interface PostgresSettings {
  readonly rounds: number;
  readonly callsPerRound: (concurrency: number) => number;
}

export interface PostgresComparison {
  readonly name: string;
  /** What the decorated side is compared with. */
  readonly other: string;
  readonly concurrency: number;
  readonly result: PairResult;
  /** What the decorated side is, when not the default set-up (the built-in adapter). */
  readonly decorated?: string;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

const unique = `${process.pid}_${randomBytes(3).toString('hex')}`;
const ORDERS = `bench_orders_${unique}`;
// One history table per side, so that each side appends at the right edge of its own primary key
// (sharing one table would give the side with the greatest entity ids B-tree inserts the others pay more for).
const historyTable = (side: string): string => `bench_history_${side}_${unique}`;
const SIDES = [
  'decorated',
  'hand',
  'hand_xact',
  'cls',
  'decorated_pool',
  'decorated_random',
  'decorated_apart',
] as const;
type Side = (typeof SIDES)[number];

const UPDATE_SQL = `UPDATE "${ORDERS}" SET "customer" = $1, "total" = $2, "lines" = $3::jsonb, "version" = $4, "timestamp" = $5 WHERE "id" = $6 AND "version" = $7`;
// What a careful hand-writer inserts: the same columns as the library's store, the transaction id
// taken from PostgreSQL in the same statement so that it costs no round trip.
const handInsertSql = (side: Side, txId: string): string =>
  `INSERT INTO "${historyTable(side)}" ("entity_type", "entity_id", "version", "op", "timestamp", "snapshot", "tx_id") VALUES ($1, $2, $3, 'update', $4, $5::jsonb, ${txId})`;
const HAND_INSERT_SQL = handInsertSql('hand', 'pg_current_xact_id()::text');
const HAND_XACT_INSERT_SQL = handInsertSql('hand_xact', '$6');
const CLS_INSERT_SQL = handInsertSql('cls', 'pg_current_xact_id()::text');

function updateParams(order: Order, expected: number): unknown[] {
  return [order.customer, order.total, JSON.stringify(order.lines), order.version, order.timestamp, order.id, expected];
}

/** The user's service: plain SQL, guarded by the expected version the library hands it. */
@Versioned({ methods: { update: 'update' } })
@HistoryTracked('history', { entityType: 'Order' })
class DecoratedOrders {
  constructor(readonly history: PostgresHistoryStore) {}
  async update(order: Order, client: Queryable) {
    return client.query(UPDATE_SQL, updateParams(order, expectedVersion(order) as number));
  }
}

/** The library's store with the INSERT-with-COMMIT path turned off: the history INSERT is a round trip of its own. */
class InsertApartStore extends PostgresHistoryStore {
  constructor(connection: ConstructorParameters<typeof PostgresHistoryStore>[0], options: { table: string }) {
    super(connection, { ...options, sendWithCommit: false });
  }
}

/** The same transaction by hand: BEGIN, guarded UPDATE, history INSERT, COMMIT; restore on failure. */
async function handWrittenUpdate(order: Order, client: Queryable): Promise<void> {
  const previous = { version: order.version, timestamp: order.timestamp };
  const expected = order.version;
  order.version = expected + 1;
  order.timestamp = new Date();
  await client.query('BEGIN');
  try {
    const updated = await client.query(UPDATE_SQL, updateParams(order, expected));
    if (updated.rowCount === 0) throw new Error(`order ${order.id} changed since version ${expected}`);
    await client.query(HAND_INSERT_SQL, ['Order', order.id, order.version, order.timestamp, JSON.stringify(order)]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    order.version = previous.version;
    order.timestamp = previous.timestamp;
    throw error;
  }
}

/**
 * The same by hand with the library's statements: the transaction id read in the BEGIN round trip
 * (`BEGIN; SELECT pg_current_xact_id()`), so the entity's method could see it, and inserted as a
 * parameter; the INSERT and COMMIT in two round trips, as hand-written code sends them.
 */
async function handWrittenSameSqlUpdate(order: Order, client: Queryable): Promise<void> {
  const previous = { version: order.version, timestamp: order.timestamp };
  const expected = order.version;
  order.version = expected + 1;
  order.timestamp = new Date();
  const begun = (await client.query('BEGIN; SELECT pg_current_xact_id()::text AS id')) as unknown as pg.QueryResult[];
  try {
    const txId = (begun[1]?.rows[0] as { id?: string } | undefined)?.id ?? null;
    const updated = await client.query(UPDATE_SQL, updateParams(order, expected));
    if (updated.rowCount === 0) throw new Error(`order ${order.id} changed since version ${expected}`);
    await client.query(HAND_XACT_INSERT_SQL, [
      'Order',
      order.id,
      order.version,
      order.timestamp,
      JSON.stringify(order),
      txId,
    ]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    order.version = previous.version;
    order.timestamp = previous.timestamp;
    throw error;
  }
}

/**
 * A minimal `TransactionalAdapter` for node-postgres, as the nestjs-cls docs describe ("Creating a
 * custom adapter"): there is no official one for `pg` (the pg-promise adapter needs pg-promise).
 * Each transaction checks a client out of the pool, as the official adapters do with theirs.
 */
class PgPoolTransactionalAdapter implements TransactionalAdapter<pg.Pool, Queryable, Record<string, never>> {
  constructor(readonly connection: pg.Pool) {}
  optionsFactory = (pool: pg.Pool) => ({
    wrapWithTransaction: async (
      _options: Record<string, never>,
      fn: () => Promise<unknown>,
      setTx: (client?: Queryable) => void,
    ) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        setTx(client);
        const result = await fn();
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    },
    getFallbackInstance: (): Queryable => pool,
  });
}

/** The alternative: `@Transactional()` from @nestjs-cls/transactional, the history insert by hand. */
@Injectable()
class ClsTransactionalOrders {
  // An explicit token: the parameter's type alone would not survive a type-only import.
  constructor(@Inject(TransactionHost) private readonly txHost: TransactionHost<PgPoolTransactionalAdapter>) {}

  @Transactional()
  async update(order: Order): Promise<void> {
    const previous = { version: order.version, timestamp: order.timestamp };
    const expected = order.version;
    order.version = expected + 1;
    order.timestamp = new Date();
    try {
      const updated = await this.txHost.tx.query(UPDATE_SQL, updateParams(order, expected));
      if (updated.rowCount === 0) throw new Error(`order ${order.id} changed since version ${expected}`);
      await this.txHost.tx.query(CLS_INSERT_SQL, [
        'Order',
        order.id,
        order.version,
        order.timestamp,
        JSON.stringify(order),
      ]);
    } catch (error) {
      order.version = previous.version;
      order.timestamp = previous.timestamp;
      throw error;
    }
  }
}

async function nestContext(pool: pg.Pool): Promise<INestApplicationContext> {
  @Module({
    imports: [
      ClsModule.forRoot({
        global: true,
        plugins: [new ClsPluginTransactional({ adapter: new PgPoolTransactionalAdapter(pool) })],
      }),
    ],
    providers: [ClsTransactionalOrders],
  })
  class BenchModule {}
  // abortOnError: false, so that a failure to start is thrown here instead of exiting the process silently.
  return NestFactory.createApplicationContext(BenchModule, { logger: ['error'], abortOnError: false });
}

function newOrder(id: string): Order {
  return {
    id,
    customer: 'ACME Corporation',
    total: 120,
    lines: [
      { sku: 'apple', qty: 3, price: 10 },
      { sku: 'pear', qty: 5, price: 12 },
      { sku: 'plum', qty: 2, price: 15 },
    ],
    version: 1,
  };
}

/** One order per worker and side, so no two calls contend for a row. */
async function seed(pool: pg.Pool, prefix: string, count: number): Promise<Order[]> {
  const orders = Array.from({ length: count }, (_, i) => newOrder(`${prefix}-${i}`));
  for (const order of orders) {
    order.timestamp = new Date();
    await pool.query(
      `INSERT INTO "${ORDERS}" ("customer", "total", "lines", "version", "timestamp", "id") VALUES ($1, $2, $3::jsonb, $4, $5, $6)`,
      updateParams(order, 0).slice(0, 6),
    );
  }
  return orders;
}

const nudge = (order: Order): void => {
  order.total = (order.total % 1000) + 1;
};

/**
 * Decorated vs hand-written (each worker holding its own pooled client for the round, so only the
 * transaction is timed) and decorated vs `@nestjs-cls/transactional` (each call checking a client
 * out of the pool, as that library's adapters do), at each concurrency.
 */
export async function postgresComparisons(url: string, settings: PostgresSettings): Promise<PostgresComparison[]> {
  const pool = new pg.Pool({ connectionString: url, max: 16 });
  const stores = Object.fromEntries(
    SIDES.map((side) => [
      side,
      new (side === 'decorated_apart' ? InsertApartStore : PostgresHistoryStore)(pool, { table: historyTable(side) }),
    ]),
  ) as Record<Side, PostgresHistoryStore>;
  let app: INestApplicationContext | undefined;
  try {
    await pool.query(
      `CREATE TABLE "${ORDERS}" ("id" text PRIMARY KEY, "customer" text NOT NULL, "total" integer NOT NULL, "lines" jsonb NOT NULL, "version" integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
    );
    for (const store of Object.values(stores)) await store.ensureSchema();
    const decorated = new DecoratedOrders(stores.decorated);
    const decoratedViaPool = new DecoratedOrders(stores.decorated_pool);
    const decoratedRandomId = new DecoratedOrders(stores.decorated_random);
    const decoratedInsertApart = new DecoratedOrders(stores.decorated_apart);
    app = await nestContext(pool);
    const cls = app.get(ClsTransactionalOrders);
    const results: PostgresComparison[] = [];
    for (const concurrency of [1, 16]) {
      const calls = settings.callsPerRound(concurrency);
      const orders = {} as Record<Side, Order[]>;
      for (const side of SIDES) orders[side] = await seed(pool, `${side}-c${concurrency}`, concurrency);

      type Call = (worker: number, client: pg.PoolClient) => Promise<unknown>;
      // Both sides of a pair in every round, call by call on each worker's client (see interleave).
      // `holdClients: false` for the pool-per-call pair, whose calls check a client out each time.
      const pair = async (a: Call, b: Call, rounds = settings.rounds, holdClients = true): Promise<PairResult> => {
        const clients = holdClients ? await Promise.all(Array.from({ length: concurrency }, () => pool.connect())) : [];
        const on = (call: Call) => (worker: number) => call(worker, clients[worker] as pg.PoolClient);
        try {
          return await interleave(rounds, calls, concurrency, on(a), on(b));
        } finally {
          for (const client of clients) client.release();
        }
      };
      const onHeldClient =
        (side: Side, update: (order: Order, client: Queryable) => Promise<unknown>): Call =>
        (worker, client) => {
          const order = orders[side][worker] as Order;
          nudge(order);
          return update(order, client);
        };
      const decoratedCall = onHeldClient('decorated', (order, client) => decorated.update(order, client));
      const handCall = onHeldClient('hand', handWrittenUpdate);
      const handSameSqlCall = onHeldClient('hand_xact', handWrittenSameSqlUpdate);
      // Runs only while createPgAdapter({ transactionId: 'random' }) is registered (plain BEGIN, random UUID txIds).
      const decoratedRandomIdCall = onHeldClient('decorated_random', (order, client) =>
        decoratedRandomId.update(order, client),
      );
      const decoratedApartCall = onHeldClient('decorated_apart', (order, client) =>
        decoratedInsertApart.update(order, client),
      );
      // This pair checks a client out of the pool per call, as @nestjs-cls/transactional's adapters do.
      const decoratedPoolCall: Call = async (worker) => {
        const order = orders.decorated_pool[worker] as Order;
        nudge(order);
        const client = await pool.connect();
        try {
          await decoratedViaPool.update(order, client);
        } finally {
          client.release();
        }
      };
      const clsCall: Call = (worker) => {
        const order = orders.cls[worker] as Order;
        nudge(order);
        return cls.update(order);
      };

      // A discarded round of each pair, so connections, plans and the JIT are warm before measuring.
      await pair(decoratedCall, handCall, 1);
      await pair(decoratedPoolCall, clsCall, 1, false);
      await pair(handSameSqlCall, handSameSqlCall, 1);
      results.push({
        name: 'decorated update vs hand-written SQL',
        other: 'hand-written (plain BEGIN)',
        concurrency,
        result: await pair(decoratedCall, handCall),
      });
      results.push({
        name: 'decorated update vs hand-written, same statements (txId read at BEGIN)',
        other: 'hand-written, same statements',
        concurrency,
        result: await pair(decoratedCall, handSameSqlCall),
      });
      results.push({
        name: 'decorated update vs @nestjs-cls/transactional + hand-written history insert',
        other: '@nestjs-cls/transactional + hand insert',
        concurrency,
        result: await pair(decoratedPoolCall, clsCall, settings.rounds, false),
      });
      await pair(decoratedCall, decoratedApartCall, 1);
      results.push({
        name: 'decorated update, history INSERT sent with COMMIT vs sent on its own',
        decorated: 'decorated, INSERT with COMMIT',
        other: 'decorated, INSERT on its own',
        concurrency,
        result: await pair(decoratedCall, decoratedApartCall),
      });
      const unregister = registerTransactionAdapter(createPgAdapter({ transactionId: 'random' }));
      try {
        await pair(decoratedRandomIdCall, handCall, 1);
        results.push({
          name: "decorated update with createPgAdapter({ transactionId: 'random' }) vs hand-written SQL",
          decorated: "decorated, transactionId: 'random'",
          other: 'hand-written (plain BEGIN)',
          concurrency,
          result: await pair(decoratedRandomIdCall, handCall),
        });
      } finally {
        unregister();
      }
      await assertRandomTxIds(pool, orders.decorated_random);
      for (const side of SIDES) await assertSameWork(pool, side, orders[side]);
    }
    return results;
  } finally {
    await app?.close();
    await pool.query(`DROP TABLE IF EXISTS "${ORDERS}", ${SIDES.map((side) => `"${historyTable(side)}"`).join(', ')}`);
    await pool.end();
  }
}

/** The side run with `transactionId: 'random'` recorded UUIDs, not PostgreSQL transaction ids. */
async function assertRandomTxIds(pool: pg.Pool, orders: Order[]): Promise<void> {
  const { rows } = await pool.query<{ tx_id: string | null }>(
    `SELECT "tx_id" FROM "${historyTable('decorated_random')}" WHERE "entity_id" = ANY($1)`,
    [orders.map((o) => o.id)],
  );
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const other = rows.find((row) => row.tx_id === null || !uuid.test(row.tx_id));
  if (rows.length === 0 || other !== undefined) {
    throw new Error(`transactionId: 'random' recorded ${other?.tx_id ?? 'no entries'}, not a random UUID`);
  }
}

/** Every side did the same work: each order's version matches its history, one entry per update. */
async function assertSameWork(pool: pg.Pool, side: Side, orders: Order[]): Promise<void> {
  const { rows } = await pool.query<{ entity_id: string; entries: string; last: number }>(
    `SELECT "entity_id", count(*) AS entries, max("version") AS last FROM "${historyTable(side)}" WHERE "entity_id" = ANY($1) GROUP BY "entity_id"`,
    [orders.map((o) => o.id)],
  );
  const byId = new Map(rows.map((row) => [row.entity_id, row]));
  for (const order of orders) {
    const row = byId.get(order.id);
    if (row === undefined || Number(row.entries) !== order.version - 1 || row.last !== order.version) {
      throw new Error(
        `benchmark sides diverged: order ${order.id} is at version ${order.version}, history ${row?.last}`,
      );
    }
  }
}
