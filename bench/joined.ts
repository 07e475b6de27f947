import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import * as mariadb from 'mariadb';
import pg from 'pg';
import {
  expectedVersion,
  HistoryTracked,
  registerTransactionAdapter,
  type TransactionAdapter,
  Versioned,
} from '../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable, mariadbAdapter } from '../src/mysql/index.js';
import { PostgresHistoryStore, pgAdapter } from '../src/postgres/index.js';
import { type ProxyProcess, startProxy } from './proxy.js';
import { interleave, type PairResult } from './stats.js';

/**
 * What making a joined call atomic costs: the caller begins a transaction, makes one decorated
 * guarded update, and commits. The decorated call runs in a savepoint (the adapters' `join`);
 * "without savepoint" is the same call through the same adapter with `join` removed (how a joined
 * call ran before: a failure kept the method's writes); "by hand" is the same UPDATE and history
 * INSERT written in the caller's transaction.
 */
export interface JoinedComparison {
  readonly database: 'PostgreSQL' | 'MariaDB';
  readonly other: string;
  readonly result: PairResult;
  /** Round trips per call, BEGIN to COMMIT of the caller's transaction included, counted by the proxy at 1 ms each way. */
  readonly roundTrips: { readonly joined: number; readonly other: number };
}

interface Order {
  id: string;
  total: number;
  version: number;
  timestamp?: Date;
}

type Dialect = {
  readonly name: JoinedComparison['database'];
  readonly param: (n: number) => string;
  readonly begin: string;
};

const unique = `${process.pid}_${randomBytes(3).toString('hex')}`;

/**
 * An adapter that drives only the sessions in `sessions`, as `base` does but without `join`: the
 * bench's sessions are always inside the caller's transaction, so the call joins it as it is, with
 * no savepoint (the MySQL-family adapters would otherwise find the caller's transaction in `run`
 * and take the savepoint there).
 */
function withoutJoin<S>(base: TransactionAdapter<S>, sessions: WeakSet<object>): TransactionAdapter<S> {
  const { join: _dropped, ...rest } = base;
  return {
    ...rest,
    name: `${base.name} without join`,
    matches: (s): s is S => sessions.has(s as object) && base.matches(s),
    isActive: () => true,
  };
}

interface Connection {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

async function compare(
  dialect: Dialect,
  connections: readonly Connection[],
  counted: { readonly proxy: ProxyProcess; readonly connections: readonly Connection[]; readonly calls: number },
  store: PostgresHistoryStore | MysqlHistoryStore,
  adapter: TransactionAdapter<unknown>,
  table: string,
  historyTable: string,
  rounds: number,
  calls: number,
): Promise<JoinedComparison[]> {
  const p = dialect.param;
  const updateSql = `UPDATE ${table} SET total = ${p(1)}, version = ${p(2)} WHERE id = ${p(3)} AND version = ${p(4)}`;
  @Versioned({ methods: { update: 'update' } })
  @HistoryTracked('history', { entityType: 'Order' })
  class Orders {
    constructor(readonly history: PostgresHistoryStore | MysqlHistoryStore) {}
    async update(order: Order, connection: Connection) {
      return connection.query(updateSql, [order.total, order.version, order.id, expectedVersion(order)]);
    }
  }
  const orders = new Orders(store);
  const insertSql = `INSERT INTO ${historyTable} (entity_type, entity_id, version, op, ${dialect.name === 'MariaDB' ? '`timestamp`' : '"timestamp"'}, snapshot) VALUES (${p(1)}, ${p(2)}, ${p(3)}, 'update', ${p(4)}, ${p(5)})`;
  const byHand = async (order: Order, connection: Connection): Promise<void> => {
    const expected = order.version;
    order.version = expected + 1;
    order.timestamp = new Date();
    await connection.query(updateSql, [order.total, order.version, order.id, expected]);
    await connection.query(insertSql, ['Order', order.id, order.version, order.timestamp, JSON.stringify(order)]);
  };
  // Each side has its own orders and its own connection, so their rows and locks never meet.
  const [mine, theirs] = connections as [Connection, Connection];
  const ordersOf = async (prefix: string): Promise<Order> => {
    const order: Order = { id: `${prefix}_${unique}`, total: 1, version: 1 };
    await mine.query(`INSERT INTO ${table} (id, total, version) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [
      order.id,
      order.total,
      order.version,
    ]);
    return order;
  };
  const inCallerTransaction = async (connection: Connection, work: () => Promise<unknown>): Promise<void> => {
    await connection.query(dialect.begin);
    try {
      await work();
      await connection.query('COMMIT');
    } catch (error) {
      await connection.query('ROLLBACK');
      throw error;
    }
  };
  const [countMine, countTheirs] = counted.connections as [Connection, Connection];
  const sessions = new WeakSet<object>([theirs, countTheirs]);
  const unregister = registerTransactionAdapter(withoutJoin(adapter, sessions));
  try {
    const results: JoinedComparison[] = [];
    for (const other of ['without savepoint', 'by hand'] as const) {
      const a = await ordersOf(`a_${other.replace(' ', '_')}`);
      const b = await ordersOf(`b_${other.replace(' ', '_')}`);
      const result = await interleave(
        rounds,
        calls,
        1,
        () =>
          inCallerTransaction(mine, () => {
            a.total += 1;
            return orders.update(a, mine);
          }),
        () =>
          inCallerTransaction(theirs, () => {
            b.total += 1;
            return other === 'by hand' ? byHand(b, theirs) : orders.update(b, theirs);
          }),
      );
      // Counted one side at a time on connections of their own through the proxy, after a first call.
      const count = async (run: () => Promise<unknown>): Promise<number> => {
        await run();
        const before = await counted.proxy.roundTrips([]);
        for (let i = 0; i < counted.calls; i++) await run();
        return ((await counted.proxy.roundTrips([])) - before) / counted.calls;
      };
      const c = await ordersOf(`c_${other.replace(' ', '_')}`);
      const d = await ordersOf(`d_${other.replace(' ', '_')}`);
      const roundTrips = {
        joined: await count(() =>
          inCallerTransaction(countMine, () => {
            c.total += 1;
            return orders.update(c, countMine);
          }),
        ),
        other: await count(() =>
          inCallerTransaction(countTheirs, () => {
            d.total += 1;
            return other === 'by hand' ? byHand(d, countTheirs) : orders.update(d, countTheirs);
          }),
        ),
      };
      results.push({ database: dialect.name, other, result, roundTrips });
    }
    return results;
  } finally {
    unregister();
  }
}

export async function joinedComparisons(
  postgresUrl: string | undefined,
  mysqlUrl: string | undefined,
  rounds: number,
  calls: number,
  countCalls = 10,
): Promise<JoinedComparison[]> {
  const results: JoinedComparison[] = [];
  if (postgresUrl !== undefined) {
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 3 });
    const table = `bench_joined_orders_${unique}`;
    const history = `bench_joined_history_${unique}`;
    await pool.query(`CREATE TABLE ${table} (id text PRIMARY KEY, total integer NOT NULL, version integer NOT NULL)`);
    const store = new PostgresHistoryStore(pool, { table: history });
    await store.ensureSchema();
    const clients = [await pool.connect(), await pool.connect()];
    const parsed = new URL(postgresUrl);
    const proxy = await startProxy(parsed.hostname, Number(parsed.port || 5432), 1);
    const proxied = new URL(postgresUrl);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    const countPool = new pg.Pool({ connectionString: proxied.toString(), max: 2 });
    const countClients = [await countPool.connect(), await countPool.connect()];
    try {
      const dialect: Dialect = { name: 'PostgreSQL', param: (n) => `$${n}`, begin: 'BEGIN' };
      results.push(
        ...(await compare(
          dialect,
          clients,
          { proxy, connections: countClients, calls: countCalls },
          store,
          pgAdapter as TransactionAdapter<unknown>,
          table,
          history,
          rounds,
          calls,
        )),
      );
    } finally {
      for (const client of [...clients, ...countClients]) client.release();
      await countPool.end();
      await proxy.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${history}`);
      await pool.end();
    }
  }
  if (mysqlUrl !== undefined) {
    const url = new URL(mysqlUrl);
    const pool = mariadb.createPool({
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.replace(/^\//, '')) || 'test',
      connectionLimit: 3,
    });
    const table = `bench_joined_orders_${unique}`;
    const history = `bench_joined_history_${unique}`;
    await pool.query(
      `CREATE TABLE ${table} (id VARCHAR(64) PRIMARY KEY, total INT NOT NULL, version INT NOT NULL) ENGINE=InnoDB`,
    );
    const store = new MysqlHistoryStore(pool as unknown as MysqlQueryable, { table: history });
    await store.ensureSchema();
    const connections = [await pool.getConnection(), await pool.getConnection()];
    const proxy = await startProxy(url.hostname, Number(url.port || 3306), 1);
    const countPool = mariadb.createPool({
      host: '127.0.0.1',
      port: proxy.port,
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.replace(/^\//, '')) || 'test',
      connectionLimit: 2,
    });
    const countConnections = [await countPool.getConnection(), await countPool.getConnection()];
    try {
      const dialect: Dialect = { name: 'MariaDB', param: () => '?', begin: 'START TRANSACTION' };
      results.push(
        ...(await compare(
          dialect,
          connections as unknown as Connection[],
          { proxy, connections: countConnections as unknown as Connection[], calls: countCalls },
          store,
          mariadbAdapter as TransactionAdapter<unknown>,
          table,
          history,
          rounds,
          calls,
        )),
      );
    } finally {
      for (const connection of [...connections, ...countConnections]) await connection.release();
      await countPool.end();
      await proxy.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${history}`);
      await pool.end();
    }
  }
  return results;
}
