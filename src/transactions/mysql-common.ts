import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';

/** @internal Bit 0 of the server status flags that MySQL and MariaDB send in every OK and EOF packet. */
export const SERVER_STATUS_IN_TRANS = 1;

const ER_DUP_ENTRY = 1062;
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

/**
 * What the mysql2 and mariadb promise connections have in common: the three transaction
 * methods and `query`.
 *
 * ```ts
 * const connection: MysqlTransactionalConnection = await pool.getConnection();
 * ```
 */
export interface MysqlTransactionalConnection {
  beginTransaction(): Promise<unknown>;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
  query(sql: string): Promise<unknown>;
}

/** @internal Where the two drivers differ: how to recognise a connection and how to learn its transaction state. */
export interface MysqlDriverTraits<C extends MysqlTransactionalConnection> {
  readonly name: string;
  matches(session: unknown): session is C;
  /** The object standing for the physical connection, which several wrapper objects may share. */
  connectionOf(session: C): object;
  /** Whether the server has a transaction open on the connection, asking it when the driver does not know. */
  inTransaction(session: C): Promise<boolean>;
  /** After the work: `false` when the transaction is known to have ended inside it; `undefined` when that would cost a query. */
  stillInTransaction(session: C): boolean | undefined;
  /**
   * A value that stays the same while no transaction can have ended on the connection (so two
   * reads that agree prove one transaction lasted between them); `undefined` when unknown.
   */
  joinMarker(session: C): unknown;
}

/** The server error number of a mysql2 or mariadb error (both set `errno` and `sqlState`). */
function errnoOf(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const { errno, sqlState } = error as { errno?: unknown; sqlState?: unknown };
  return typeof errno === 'number' && typeof sqlState === 'string' ? errno : undefined;
}

/** @internal 1062 ER_DUP_ENTRY: another writer holds this key (the history key, or the entity's). */
export function isDuplicateEntry(error: unknown): boolean {
  return errnoOf(error) === ER_DUP_ENTRY;
}

/** @internal 1213 ER_LOCK_DEADLOCK and 1205 ER_LOCK_WAIT_TIMEOUT: running the transaction again can succeed. */
export function isLockFailure(error: unknown): boolean {
  const errno = errnoOf(error);
  return errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT;
}

/** @internal Whether a value has all the named methods. */
export function hasMethods<K extends string>(
  value: unknown,
  names: readonly K[],
): value is Record<K, (...args: never[]) => unknown> {
  if (value === null || typeof value !== 'object') return false;
  return names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');
}

async function rollbackQuietly(connection: MysqlTransactionalConnection): Promise<void> {
  try {
    await connection.rollback();
  } catch {
    // The error that made us roll back is the one to report; a broken connection fails ROLLBACK too.
  }
}

/**
 * @internal Builds a MySQL-family adapter. Neither driver can say synchronously and reliably whether a
 * connection is inside a transaction (see the two adapters), so `isActive` reports only the
 * transactions this adapter runs for the current call chain, and `run` asks the server first:
 * when the caller already opened a transaction, `run` joins it (no begin, commit or rollback of
 * ours) instead of sending `START TRANSACTION`, which would silently commit the caller's work.
 * The caller owns a joined transaction, so its failures are not retried.
 */
export function createMysqlFamilyAdapter<C extends MysqlTransactionalConnection>(
  traits: MysqlDriverTraits<C>,
): TransactionAdapter<C> {
  /** Connections with a transaction this adapter runs or joined, with the txId of a joined one. */
  const active = new WeakMap<object, string | undefined>();
  /** The txId of the last call that joined a caller's transaction, and the connection's marker after it. */
  const lastJoin = new WeakMap<object, { readonly txId: string; readonly marker: unknown }>();
  const joinedFailures = new WeakSet<object>();

  const join = async <R>(session: C, connection: object, sameAsLast: boolean, work: () => Promise<R>): Promise<R> => {
    const txId = (sameAsLast ? lastJoin.get(connection)?.txId : undefined) ?? randomUUID();
    active.set(connection, txId);
    try {
      return await work();
    } catch (error) {
      // The deadlock victim's whole transaction is gone, and it was the caller's: retrying here
      // would run the call outside any transaction. Mark the error (and its causes) as final.
      for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
        joinedFailures.add(e);
        e = (e as { cause?: unknown }).cause;
      }
      throw error;
    } finally {
      active.delete(connection);
      const after = traits.joinMarker(session);
      if (after === undefined) lastJoin.delete(connection);
      else lastJoin.set(connection, { txId, marker: after });
    }
  };

  const own = async <R>(session: C, connection: object, work: () => Promise<R>): Promise<R> => {
    lastJoin.delete(connection);
    await session.beginTransaction();
    active.set(connection, undefined);
    try {
      let result: R;
      try {
        result = await work();
      } catch (error) {
        await rollbackQuietly(session);
        throw error;
      }
      if (traits.stillInTransaction(session) === false) throw endedError(traits.name);
      try {
        await session.commit();
      } catch (error) {
        await rollbackQuietly(session);
        throw error;
      }
      return result;
    } finally {
      active.delete(connection);
    }
  };

  return Object.freeze({
    name: traits.name,
    matches: (session: unknown): session is C => traits.matches(session),
    isActive: (session: C) => {
      const connection = traits.connectionOf(session);
      return active.has(connection) && !heldByAnotherCall(connection);
    },
    run: <R>(session: C, work: () => Promise<R>): Promise<R> => {
      const connection = traits.connectionOf(session);
      return exclusively(connection, async () => {
        // Calls joining one transaction of the caller share its txId. Another transaction may
        // have begun since the last such call, unless the connection's marker (read before the
        // probe below sends anything) proves that none ended in between.
        const last = lastJoin.get(connection);
        const before = last === undefined ? undefined : traits.joinMarker(session);
        const sameAsLast = last !== undefined && before !== undefined && Object.is(before, last.marker);
        return (await traits.inTransaction(session))
          ? join(session, connection, sameAsLast, work)
          : own(session, connection, work);
      });
    },
    isConflict: isDuplicateEntry,
    isTransient: (error: unknown) => isLockFailure(error) && !joinedFailures.has(error as object),
    transactionId: (session: C) => active.get(traits.connectionOf(session)),
  });
}

function endedError(adapter: string): TransactionStateError {
  return new TransactionStateError(
    adapter,
    'TRANSACTION_CLOSED',
    'The transaction the library began was ended inside the decorated call (COMMIT, ROLLBACK, or a statement that ' +
      'commits implicitly such as CREATE or ALTER ran on the connection), so the entity write and the history write did ' +
      'not commit together. Do not end the transaction inside a decorated method; begin your own around the call ' +
      'instead, which the call then joins.',
  );
}
