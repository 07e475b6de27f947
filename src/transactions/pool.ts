import type { TransactionAdapter } from './adapter.js';
import { isConnectionLost } from './connection-lost.js';
import { mariadbAdapter } from './mariadb.js';
import { hasMethods } from './mysql-common.js';
import { mysql2Adapter } from './mysql2.js';
import { pgAdapter } from './pg.js';
import { findAdapter } from './registry.js';

/**
 * How one driver's pool hands out a connection and takes it back. `release` gets the call's
 * error when it failed: a connection that broke is destroyed rather than returned to the pool.
 */
interface PoolDriver<P, C> {
  readonly name: string;
  matches(session: unknown): session is P;
  acquire(pool: P): Promise<C>;
  release(connection: C, failure: unknown): unknown;
  /** The adapter of the connections this pool hands out, for what a pooled call's errors mean. */
  readonly connections: TransactionAdapter<unknown>;
}

/**
 * A pool passed as the session, like an ORM's root object: the call takes a connection from it,
 * runs in a transaction on that connection (the connection in place of the pool in the session
 * argument and in `currentSession()`, so the method writes through it), and gives it back when the
 * call ends, also when it fails. Each call takes its own connection, so concurrent calls on one
 * pool run side by side, each in its own transaction. A retried call takes a new connection for
 * each attempt.
 */
function poolAdapter<P extends object, C>(driver: PoolDriver<P, C>): TransactionAdapter<P> {
  const { connections } = driver;
  // A user adapter registered for the connections (createPgAdapter({ isolation })) still drives them.
  const adapterOf = (connection: unknown): TransactionAdapter<unknown> => findAdapter(connection) ?? connections;
  return Object.freeze({
    name: driver.name,
    matches: (session: unknown): session is P => driver.matches(session),
    // A pool is never inside a transaction: its connections are.
    isActive: () => false,
    async run<R>(pool: P, work: (transaction?: unknown) => Promise<R>): Promise<R> {
      const connection = await driver.acquire(pool);
      let failure: unknown;
      try {
        return await adapterOf(connection).run(connection, (opened?: unknown) => work(opened ?? connection));
      } catch (error) {
        failure = error ?? new Error('the call failed');
        throw error;
      } finally {
        await Promise.resolve(driver.release(connection, failure)).catch(() => undefined);
      }
    },
    isConflict: (error: unknown) => connections.isConflict?.(error) === true,
    isTransient: (error: unknown) => connections.isTransient?.(error) === true,
    // The frame of a pooled call holds the connection, so these are asked about the connection.
    transactionId: (connection: unknown) => adapterOf(connection).transactionId?.(connection),
    join<R>(connection: unknown, work: () => Promise<R>): Promise<R> {
      const adapter = adapterOf(connection);
      return adapter.join ? adapter.join(connection, work) : work();
    },
  }) as TransactionAdapter<P>;
}

/**
 * The part of a node-postgres `Pool` the adapter uses: `connect()` and its counters, which no
 * client has (a client has `getTransactionStatus()` instead).
 *
 * ```ts
 * const pool: PgPoolLike = new Pool({ connectionString: process.env.DATABASE_URL });
 * ```
 */
export interface PgPoolLike {
  connect(): Promise<{ release(destroy?: boolean | Error): void }>;
  readonly totalCount: number;
  readonly idleCount: number;
}

function isPgPool(session: unknown): session is PgPoolLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Partial<PgPoolLike> & { query?: unknown; getTransactionStatus?: unknown };
  return (
    typeof candidate.connect === 'function' &&
    typeof candidate.query === 'function' &&
    typeof candidate.totalCount === 'number' &&
    typeof candidate.idleCount === 'number' &&
    candidate.getTransactionStatus === undefined
  );
}

/**
 * The part of a `mysql2/promise` pool the adapter uses: `getConnection()` resolving a pooled
 * connection, and the callback pool it wraps.
 *
 * ```ts
 * const pool: Mysql2PoolLike = mysql.createPool(process.env.MYSQL_URL);
 * ```
 */
export interface Mysql2PoolLike {
  getConnection(): Promise<{ release(): void; destroy(): void }>;
  readonly pool: object;
}

function isMysql2Pool(session: unknown): session is Mysql2PoolLike {
  return (
    hasMethods(session, ['getConnection', 'query', 'execute']) &&
    session.getConnection.length === 0 &&
    typeof (session as { beginTransaction?: unknown }).beginTransaction !== 'function' &&
    hasMethods((session as { pool?: unknown }).pool, ['getConnection'])
  );
}

/**
 * The part of a `mariadb` promise pool the adapter uses.
 *
 * ```ts
 * const pool: MariadbPoolLike = mariadb.createPool(process.env.MYSQL_URL);
 * ```
 */
export interface MariadbPoolLike {
  getConnection(): Promise<{ release(): Promise<void>; destroy(): void }>;
  totalConnections(): number;
  idleConnections(): number;
}

function isMariadbPool(session: unknown): session is MariadbPoolLike {
  return (
    hasMethods(session, ['getConnection', 'query', 'batch', 'totalConnections', 'idleConnections']) &&
    typeof (session as { beginTransaction?: unknown }).beginTransaction !== 'function'
  );
}

/** Whether a failed call's connection is fit to go back to its pool. */
const broken = (failure: unknown): boolean => failure !== undefined && isConnectionLost(failure);

/**
 * The built-in adapter for a node-postgres `Pool` passed as the session: the call runs on a client
 * from `pool.connect()`, which goes back with `release()` when the call ends (`release(error)`,
 * which discards it, when the connection broke).
 *
 * ```ts
 * await orders.update(order, pool); // a client of its own, released when the call ends
 * ```
 */
export const pgPoolAdapter: TransactionAdapter<PgPoolLike> = poolAdapter({
  name: 'pg-pool',
  matches: isPgPool,
  acquire: (pool: PgPoolLike) => pool.connect(),
  release: (client, failure) => client.release(broken(failure) ? (failure as Error) : undefined),
  connections: pgAdapter as TransactionAdapter<unknown>,
});

/**
 * The built-in adapter for a `mysql2/promise` pool passed as the session: a connection from
 * `pool.getConnection()`, released when the call ends (destroyed when it broke).
 *
 * ```ts
 * await orders.update(order, pool); // pool = mysql.createPool(url) from mysql2/promise
 * ```
 */
export const mysql2PoolAdapter: TransactionAdapter<Mysql2PoolLike> = poolAdapter({
  name: 'mysql2-pool',
  matches: isMysql2Pool,
  acquire: (pool: Mysql2PoolLike) => pool.getConnection(),
  release: (connection, failure) => (broken(failure) ? connection.destroy() : connection.release()),
  connections: mysql2Adapter as TransactionAdapter<unknown>,
});

/**
 * The built-in adapter for a `mariadb` promise pool passed as the session: a connection from
 * `pool.getConnection()`, released when the call ends (destroyed when it broke).
 *
 * ```ts
 * await orders.update(order, pool); // pool = mariadb.createPool(url)
 * ```
 */
export const mariadbPoolAdapter: TransactionAdapter<MariadbPoolLike> = poolAdapter({
  name: 'mariadb-pool',
  matches: isMariadbPool,
  acquire: (pool: MariadbPoolLike) => pool.getConnection(),
  release: (connection, failure) => (broken(failure) ? connection.destroy() : connection.release()),
  connections: mariadbAdapter as TransactionAdapter<unknown>,
});
