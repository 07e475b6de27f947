import type { TransactionAdapter } from './adapter.js';
import {
  createMysqlFamilyAdapter,
  hasMethods,
  type MysqlTransactionalConnection,
  SERVER_STATUS_IN_TRANS,
} from './mysql-common.js';

/**
 * The part of a `mariadb` promise connection (from `createConnection` or `pool.getConnection()`)
 * the adapter uses.
 *
 * ```ts
 * const connection: MariadbConnectionLike = await pool.getConnection(); // pool from mariadb
 * ```
 */
export interface MariadbConnectionLike extends MysqlTransactionalConnection {
  batch(sql: string, values?: unknown): Promise<unknown>;
  /** `status`: the server status flags of the last OK or EOF packet; `null` before connecting. */
  readonly info: { readonly status: number | null } | null;
}

function isMariadbConnection(session: unknown): session is MariadbConnectionLike {
  // `batch` and `info` are the mariadb driver's own; mysql2 has neither, and pg, PGlite,
  // better-sqlite3 and MongoDB sessions have no `beginTransaction`. The callback flavour
  // (beginTransaction(callback)) is not matched.
  if (!hasMethods(session, ['beginTransaction', 'commit', 'rollback', 'query', 'batch'])) return false;
  const info = (session as { info?: unknown }).info;
  return session.beginTransaction.length === 0 && info !== null && typeof info === 'object' && 'status' in info;
}

function flaggedInTransaction(session: MariadbConnectionLike): boolean {
  return ((session.info?.status ?? 0) & SERVER_STATUS_IN_TRANS) !== 0;
}

/**
 * The built-in adapter for `mariadb` promise connections: `beginTransaction()` / `commit()`,
 * `rollback()` on error; duplicate keys (1062) are conflicts, deadlocks (1213) and lock wait
 * timeouts (1205) are retried by the call that owns the transaction.
 *
 * The driver keeps the server status flags of the last OK or EOF packet in `connection.info.status`.
 * When SERVER_STATUS_IN_TRANS is clear there is no transaction, and the library begins one at no
 * extra cost. When it is set it may not be true: after an error packet the driver sets the flag
 * itself (an autocommit statement that failed leaves it set with no transaction open). Joining
 * such a phantom transaction would write the entity and its history without one, so in that case
 * the adapter sends `DO 0`, whose OK packet refreshes the flags, and joins only a real transaction.
 * The flag also shows, for free, a transaction ended inside the call when it is clear. When it is
 * set, the same doubt holds after the method ran (a deadlock it caught rolled the transaction back
 * and left the flag set), so before the history INSERT the adapter refreshes it with `DO 0`: one
 * round trip per call, without which the INSERT could run in autocommit; the commit check then
 * reads the flag of the INSERT's own OK packet for free. Each call joining a
 * transaction of the caller gets a txId of its own: telling that two such calls ran in one
 * transaction would take patching the driver's connection objects, which the library does not do.
 *
 * ```ts
 * const connection = await pool.getConnection();
 * try { await orders.update(order, connection); } finally { await connection.release(); }
 * ```
 */
export const mariadbAdapter: TransactionAdapter<MariadbConnectionLike> =
  createMysqlFamilyAdapter<MariadbConnectionLike>({
    name: 'mariadb',
    matches: isMariadbConnection,
    // One `info` object per physical connection, whichever wrapper the pool handed out.
    connectionOf: (session) => session.info ?? session,
    probe: async (session) => {
      await session.query('DO 0');
      return session.info?.status ?? 0;
    },
    statusAfter: (session) => session.info?.status ?? undefined,
    // A clear flag is exact. A set one may be the driver's own after an error packet (a caught
    // deadlock leaves it set with the transaction gone), except right after the library's
    // history INSERT, the last statement of a call, when the commit check reads it.
    knownOpen: (session, last, purpose) => {
      if (!flaggedInTransaction(session)) return false;
      return purpose === 'commit' && last?.what === 'history' ? true : undefined;
    },
    joinMarker: () => undefined,
  });
