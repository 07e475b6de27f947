import { UnsupportedSessionError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import {
  createMysqlFamilyAdapter,
  hasMethods,
  type MysqlTransactionalConnection,
  SERVER_STATUS_IN_TRANS,
} from './mysql-common.js';

/**
 * The part of a `mysql2/promise` connection (from `createConnection`, `pool.getConnection()` or a
 * callback connection's `.promise()`) the adapter uses.
 *
 * ```ts
 * const connection: Mysql2ConnectionLike = await pool.getConnection(); // pool from mysql2/promise
 * ```
 */
export interface Mysql2ConnectionLike extends MysqlTransactionalConnection {
  /** The callback-API connection the promise one wraps: one per physical connection. */
  readonly connection: object;
}

function isMysql2Connection(session: unknown): session is Mysql2ConnectionLike {
  // A promise connection wraps the callback one (which has `promise()`) in `.connection`; a
  // mariadb connection has `batch` instead; pg, PGlite, better-sqlite3 and MongoDB sessions have
  // no `beginTransaction`. The callback connection itself (beginTransaction(cb)) is not matched.
  return (
    (hasMethods(session, ['beginTransaction', 'commit', 'rollback', 'query', 'execute']) &&
      session.beginTransaction.length === 0 &&
      typeof (session as { batch?: unknown }).batch !== 'function' &&
      hasMethods((session as { connection?: unknown }).connection, ['promise', 'query'])) ||
    isMysqljsConnection(session)
  );
}

/**
 * A connection of the `mysql` driver (mysqljs): callback methods (`query(sql, values, cb)`,
 * `beginTransaction(options, cb)`), its protocol object, and neither mysql2's `promise()` and
 * `execute` nor mariadb's `batch`. Matched only to be refused with a clear error.
 */
function isMysqljsConnection(session: unknown): boolean {
  if (!hasMethods(session, ['beginTransaction', 'commit', 'rollback', 'query'])) return false;
  const candidate = session as unknown as Record<string, unknown>;
  return (
    session.query.length >= 3 &&
    session.beginTransaction.length >= 1 &&
    typeof candidate.promise !== 'function' &&
    typeof candidate.execute !== 'function' &&
    typeof candidate.batch !== 'function' &&
    candidate._protocol !== null &&
    typeof candidate._protocol === 'object'
  );
}

function refuseMysqljs(session: Mysql2ConnectionLike): Error | undefined {
  if (!isMysqljsConnection(session)) return undefined;
  return new UnsupportedSessionError('mysql (mysqljs) Connection', ['mysql2', 'mariadb'], {
    advice:
      'The mysql driver has only a callback API, which the library cannot run a transaction through. Use mysql2, ' +
      "whose API is the same: import mysql from 'mysql2/promise' and pass a connection from mysql.createConnection() " +
      'or pool.getConnection(), or the .promise() of a callback connection of mysql2.',
  });
}

/** The server status flags of an OK packet, as mysql2 returns it from `query`: `[ResultSetHeader, undefined]`. */
function serverStatusOf(result: unknown): number | undefined {
  const header = Array.isArray(result) ? result[0] : result;
  const status = (header as { serverStatus?: unknown } | null | undefined)?.serverStatus;
  return typeof status === 'number' ? status : undefined;
}

/**
 * How many bytes the connection has sent: unchanged, it proves that no statement (no COMMIT, no
 * new BEGIN) went to the server in between.
 */
function bytesWritten(session: Mysql2ConnectionLike): number | undefined {
  const stream = (session.connection as { stream?: { bytesWritten?: unknown } }).stream;
  return typeof stream?.bytesWritten === 'number' ? stream.bytesWritten : undefined;
}

/**
 * The built-in adapter for `mysql2/promise` connections: `beginTransaction()` / `commit()`,
 * `rollback()` on error; duplicate keys (1062) are conflicts, deadlocks (1213) and lock wait
 * timeouts (1205) are retried by the call that owns the transaction.
 *
 * mysql2 keeps no transaction state: the server's status flags arrive in each OK packet but are
 * only handed to the caller of that query, never stored on the connection, and wrapping the
 * driver's methods would miss a transaction begun before the library first saw the connection
 * (or begun with a plain `query('START TRANSACTION')`). So before beginning, the adapter sends
 * `DO 0` and reads SERVER_STATUS_IN_TRANS from its OK packet: one round trip per transaction the
 * library begins, exact whoever opened the transaction. A transaction the caller opened is joined;
 * consecutive calls joining it share one txId when the connection sent nothing between them.
 * For the same reason, before the history INSERT the adapter sends `DO 0` again: the method may
 * have caught a deadlock (InnoDB rolled the transaction back) or run DDL (which commits), and the
 * INSERT must not run in autocommit. The check before COMMIT reads the INSERT's own OK packet for
 * free when the connection has sent nothing since (`stream.bytesWritten`).
 * A `mysql` (mysqljs) connection is recognised only to be refused with `UnsupportedSessionError`.
 *
 * ```ts
 * const connection = await pool.getConnection();
 * try { await orders.update(order, connection); } finally { connection.release(); }
 * ```
 */
export const mysql2Adapter: TransactionAdapter<Mysql2ConnectionLike> = createMysqlFamilyAdapter<Mysql2ConnectionLike>({
  name: 'mysql2',
  matches: isMysql2Connection,
  // A mysqljs connection has no `.connection`: it stands for itself (and is refused anyway).
  connectionOf: (session) => (session.connection as object | undefined) ?? session,
  refuse: refuseMysqljs,
  probe: async (session) => serverStatusOf(await session.query('DO 0')) ?? 0,
  statusAfter: (_session, result) => serverStatusOf(result),
  // The status of the library's last statement still holds when the connection has sent nothing since.
  knownOpen: (session, last) => {
    if (last === undefined || last.marker === undefined || last.marker !== bytesWritten(session)) return undefined;
    return (last.status & SERVER_STATUS_IN_TRANS) !== 0;
  },
  joinMarker: bytesWritten,
});
