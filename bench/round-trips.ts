import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import * as mariadb from 'mariadb';
import pg from 'pg';
import { expectedVersion, HistoryTracked, Versioned } from '../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../src/mysql/index.js';
import { PostgresHistoryStore } from '../src/postgres/index.js';
import { type ProxyProcess, startProxy } from './proxy.js';
import { interleave, type Latencies, latencies, type PairResult, type Spread, spread } from './stats.js';

/**
 * Round trips counted and priced: each database's owned guarded update, decorated and written by
 * hand (BEGIN, UPDATE, history INSERT, COMMIT), through the loopback proxy of `proxy.ts` (its own
 * process), with no added delay and with a fixed delay each way; and the PostgreSQL pair under a
 * pool of 16 at concurrency 64, straight to the server.
 */
export interface RoundTripPair {
  readonly database: 'PostgreSQL' | 'MariaDB';
  /** What a call of each side costs in round trips, counted by the proxy. */
  readonly roundTrips: { readonly decorated: number; readonly hand: number };
  readonly runs: readonly {
    readonly delayMs: number;
    readonly concurrency: number;
    readonly result: PairResult;
  }[];
}

export interface Throughput {
  readonly pool: number;
  readonly concurrency: number;
  readonly seconds: number;
  /** Updates per second of each side, per round, and the per-round ratio decorated ÷ hand. */
  readonly decorated: { readonly perSecond: Spread; readonly latencies: Latencies[] };
  readonly hand: { readonly perSecond: Spread; readonly latencies: Latencies[] };
  readonly ratio: Spread;
}

export interface RoundTripSettings {
  readonly delaysMs: readonly number[];
  readonly concurrencies: readonly number[];
  readonly rounds: number;
  /** Calls per side per round at `delayMs` and `concurrency`. */
  readonly calls: (delayMs: number, concurrency: number) => number;
  /** Calls per side to count round trips with. */
  readonly countCalls: number;
}

interface Order {
  id: string;
  customer: string;
  total: number;
  version: number;
  timestamp?: Date;
}

interface Connection {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

interface Dialect {
  readonly name: RoundTripPair['database'];
  readonly p: (n: number) => string;
  readonly q: (identifier: string) => string;
  readonly begin: string;
  readonly affected: (result: unknown) => number;
  readonly txIdSql: string;
}

const unique = `${process.pid}_${randomBytes(3).toString('hex')}`;

const POSTGRES: Dialect = {
  name: 'PostgreSQL',
  p: (n) => `$${n}`,
  q: (identifier) => `"${identifier}"`,
  begin: 'BEGIN',
  affected: (result) => (result as { rowCount?: number | null }).rowCount ?? 0,
  txIdSql: 'pg_current_xact_id()::text',
};

const MARIADB: Dialect = {
  name: 'MariaDB',
  p: () => '?',
  q: (identifier) => `\`${identifier}\``,
  begin: 'START TRANSACTION',
  affected: (result) => (result as { affectedRows?: number }).affectedRows ?? 0,
  txIdSql: 'NULL',
};

function statements(dialect: Dialect, table: string, history: string) {
  const { p, q } = dialect;
  return {
    create: (idType: string) =>
      `CREATE TABLE ${table} (id ${idType} PRIMARY KEY, customer ${idType} NOT NULL, total integer NOT NULL, version integer NOT NULL)`,
    insert: `INSERT INTO ${table} (id, customer, total, version) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`,
    update: `UPDATE ${table} SET customer = ${p(1)}, total = ${p(2)}, version = ${p(3)} WHERE id = ${p(4)} AND version = ${p(5)}`,
    // What a careful hand-writer inserts into the library's own history table: the columns it needs.
    history: `INSERT INTO ${history} (entity_type, entity_id, version, op, ${q('timestamp')}, snapshot, tx_id) VALUES (${p(1)}, ${p(2)}, ${p(3)}, 'update', ${p(4)}, ${p(5)}, ${dialect.txIdSql})`,
  };
}

/** Both sides of one database's pair, on any connection of that database. */
function sides(dialect: Dialect, store: PostgresHistoryStore | MysqlHistoryStore, table: string, history: string) {
  const sql = statements(dialect, table, history);
  @Versioned({ methods: { update: 'update' } })
  @HistoryTracked('history', { entityType: 'Order' })
  class Orders {
    constructor(readonly history: PostgresHistoryStore | MysqlHistoryStore) {}
    async update(order: Order, connection: Connection) {
      return connection.query(sql.update, [
        order.customer,
        order.total,
        order.version,
        order.id,
        expectedVersion(order),
      ]);
    }
  }
  const decorated = new Orders(store);
  const hand = async (order: Order, connection: Connection): Promise<void> => {
    const previous = { version: order.version, timestamp: order.timestamp };
    const expected = order.version;
    order.version = expected + 1;
    order.timestamp = new Date();
    await connection.query(dialect.begin);
    try {
      const updated = await connection.query(sql.update, [
        order.customer,
        order.total,
        order.version,
        order.id,
        expected,
      ]);
      if (dialect.affected(updated) === 0) throw new Error(`order ${order.id} changed since version ${expected}`);
      await connection.query(sql.history, ['Order', order.id, order.version, order.timestamp, JSON.stringify(order)]);
      await connection.query('COMMIT');
    } catch (error) {
      await connection.query('ROLLBACK');
      order.version = previous.version;
      order.timestamp = previous.timestamp;
      throw error;
    }
  };
  return {
    sql,
    decorated: (order: Order, connection: Connection) => decorated.update(order, connection),
    hand,
  };
}

/** What each database needs: connections through a proxy (or straight), and the tables. */
interface Database {
  readonly dialect: Dialect;
  readonly host: string;
  readonly port: number;
  /** A pool of `size` connections to `port` (the proxy's, or the server's). */
  pool(port: number, size: number): Promise<Pool>;
  readonly idType: string;
}

interface Pool {
  connection(): Promise<Connection & { release(): unknown }>;
  query(sql: string, params?: unknown[]): Promise<unknown>;
  store(table: string): PostgresHistoryStore | MysqlHistoryStore;
  end(): Promise<void>;
}

function postgresDatabase(url: string): Database {
  const parsed = new URL(url);
  return {
    dialect: POSTGRES,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    idType: 'text',
    pool: async (port, size) => {
      const target = new URL(url);
      target.hostname = '127.0.0.1';
      target.port = String(port);
      const pool = new pg.Pool({ connectionString: target.toString(), max: size });
      return {
        connection: () => pool.connect(),
        query: (sql, params) => pool.query(sql, params),
        store: (table) => new PostgresHistoryStore(pool, { table }),
        end: () => pool.end(),
      };
    },
  };
}

function mariadbDatabase(url: string): Database {
  const parsed = new URL(url);
  return {
    dialect: MARIADB,
    host: parsed.hostname,
    port: Number(parsed.port || 3306),
    idType: 'VARCHAR(64)',
    pool: async (port, size) => {
      const pool = mariadb.createPool({
        host: '127.0.0.1',
        port,
        user: decodeURIComponent(parsed.username || 'root'),
        password: decodeURIComponent(parsed.password),
        database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'test',
        connectionLimit: size,
      });
      return {
        connection: async () => (await pool.getConnection()) as unknown as Connection & { release(): unknown },
        query: (sql, params) => pool.query(sql, params),
        store: (table) => new MysqlHistoryStore(pool as unknown as MysqlQueryable, { table }),
        end: () => pool.end(),
      };
    },
  };
}

function newOrder(id: string): Order {
  return { id, customer: 'ACME Corporation', total: 1, version: 1 };
}

async function seed(pool: Pool, insert: string, prefix: string, count: number): Promise<Order[]> {
  const orders = Array.from({ length: count }, (_, i) => newOrder(`${prefix}-${i}`));
  for (const order of orders) await pool.query(insert, [order.id, order.customer, order.total, order.version]);
  return orders;
}

async function pairFor(database: Database, settings: RoundTripSettings): Promise<RoundTripPair> {
  const { dialect } = database;
  const table = `bench_rt_orders_${unique}`;
  const history = `bench_rt_history_${unique}`;
  const setupPool = await database.pool(database.port, 2);
  const store = setupPool.store(history);
  const proxies: ProxyProcess[] = [];
  try {
    await setupPool.query(statements(dialect, table, history).create(database.idType));
    await store.ensureSchema();
    const runs: RoundTripPair['runs'][number][] = [];
    let roundTrips = { decorated: Number.NaN, hand: Number.NaN };
    for (const delayMs of settings.delaysMs) {
      const proxy = await startProxy(database.host, database.port, delayMs);
      proxies.push(proxy);
      const maxConcurrency = Math.max(...settings.concurrencies);
      const pool = await database.pool(proxy.port, maxConcurrency);
      const pair = sides(dialect, pool.store(history), table, history);
      try {
        if (delayMs === Math.max(...settings.delaysMs)) {
          // Counted on one connection per side, one side at a time: nothing else crosses the proxy meanwhile.
          // At the largest delay, so that statements a driver writes without waiting (pipelining) share a round trip, as on a network.
          const count = async (side: 'decorated' | 'hand'): Promise<number> => {
            const [order] = await seed(pool, pair.sql.insert, `count-${side}-${delayMs}`, 1);
            const connection = await pool.connection();
            try {
              await pair[side](order as Order, connection); // the connection's first call may prepare statements
              const before = await proxy.roundTrips([]);
              for (let i = 0; i < settings.countCalls; i++) {
                (order as Order).total++;
                await pair[side](order as Order, connection);
              }
              return ((await proxy.roundTrips([])) - before) / settings.countCalls;
            } finally {
              await connection.release();
            }
          };
          roundTrips = { decorated: await count('decorated'), hand: await count('hand') };
        }
        for (const concurrency of settings.concurrencies) {
          const calls = settings.calls(delayMs, concurrency);
          const mine = await seed(pool, pair.sql.insert, `d-${delayMs}-${concurrency}`, concurrency);
          const theirs = await seed(pool, pair.sql.insert, `h-${delayMs}-${concurrency}`, concurrency);
          const connections = await Promise.all(Array.from({ length: concurrency }, () => pool.connection()));
          try {
            const a = (worker: number) => {
              const order = mine[worker] as Order;
              order.total++;
              return pair.decorated(order, connections[worker] as Connection);
            };
            const b = (worker: number) => {
              const order = theirs[worker] as Order;
              order.total++;
              return pair.hand(order, connections[worker] as Connection);
            };
            await interleave(1, Math.min(calls, 4 * concurrency), concurrency, a, b); // warm-up
            runs.push({ delayMs, concurrency, result: await interleave(settings.rounds, calls, concurrency, a, b) });
          } finally {
            for (const connection of connections) await connection.release();
          }
        }
      } finally {
        await pool.end();
      }
    }
    return { database: dialect.name, roundTrips, runs };
  } finally {
    for (const proxy of proxies) await proxy.close();
    await setupPool.query(`DROP TABLE IF EXISTS ${table}, ${history}`);
    await setupPool.end();
  }
}

export async function roundTripPairs(
  postgresUrl: string | undefined,
  mysqlUrl: string | undefined,
  settings: RoundTripSettings,
): Promise<RoundTripPair[]> {
  const results: RoundTripPair[] = [];
  if (postgresUrl !== undefined) results.push(await pairFor(postgresDatabase(postgresUrl), settings));
  if (mysqlUrl !== undefined) results.push(await pairFor(mariadbDatabase(mysqlUrl), settings));
  return results;
}

/**
 * Decorated updates per second against hand-written ones, PostgreSQL straight: `concurrency`
 * workers share a pool of `poolSize` clients, each call checking a client out and back in, the
 * sides alternating round by round (one side at a time, so each has the whole pool).
 */
export async function throughput(
  url: string,
  settings: {
    readonly poolSize: number;
    readonly concurrency: number;
    readonly rounds: number;
    readonly seconds: number;
  },
): Promise<Throughput> {
  const database = postgresDatabase(url);
  const table = `bench_tp_orders_${unique}`;
  const history = `bench_tp_history_${unique}`;
  const pool = await database.pool(database.port, settings.poolSize);
  const store = pool.store(history);
  try {
    await pool.query(statements(POSTGRES, table, history).create(database.idType));
    await store.ensureSchema();
    const pair = sides(POSTGRES, store, table, history);
    const orders = {
      decorated: await seed(pool, pair.sql.insert, 'tp-d', settings.concurrency),
      hand: await seed(pool, pair.sql.insert, 'tp-h', settings.concurrency),
    };
    const run = async (side: 'decorated' | 'hand'): Promise<{ perSecond: number; latencies: Latencies }> => {
      const samples: number[] = [];
      const until = performance.now() + settings.seconds * 1000;
      const began = performance.now();
      await Promise.all(
        Array.from({ length: settings.concurrency }, async (_, worker) => {
          const order = orders[side][worker] as Order;
          while (performance.now() < until) {
            const start = performance.now();
            const connection = await pool.connection();
            try {
              order.total++;
              await pair[side](order, connection);
            } finally {
              connection.release();
            }
            samples.push(performance.now() - start);
          }
        }),
      );
      return { perSecond: samples.length / ((performance.now() - began) / 1000), latencies: latencies(samples) };
    };
    await run('decorated');
    await run('hand');
    const d: { perSecond: number; latencies: Latencies }[] = [];
    const h: { perSecond: number; latencies: Latencies }[] = [];
    for (let round = 0; round < settings.rounds; round++) {
      if (round % 2 === 0) {
        d.push(await run('decorated'));
        h.push(await run('hand'));
      } else {
        h.push(await run('hand'));
        d.push(await run('decorated'));
      }
    }
    return {
      pool: settings.poolSize,
      concurrency: settings.concurrency,
      seconds: settings.seconds,
      decorated: { perSecond: spread(d.map((x) => x.perSecond)), latencies: d.map((x) => x.latencies) },
      hand: { perSecond: spread(h.map((x) => x.perSecond)), latencies: h.map((x) => x.latencies) },
      ratio: spread(d.map((x, i) => x.perSecond / (h[i]?.perSecond ?? Number.NaN))),
    };
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${history}`);
    await pool.end();
  }
}
