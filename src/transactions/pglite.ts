import { TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import {
  abortedError,
  endedError,
  inSavepoint,
  joinAbortedError,
  joinEndedError,
  type PgAdapterOptions,
} from './pg.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';
import { beginSql, commitRolledBack, isRetryableSqlState, isUniqueViolation, transactionIdOf } from './sql-state.js';

/**
 * The part of a PGlite instance the adapter uses.
 *
 * ```ts
 * const db: PGliteLike = await PGlite.create();
 * ```
 */
export interface PGliteLike {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  exec(text: string): Promise<unknown>;
  transaction(callback: (tx: PGliteTransactionLike) => Promise<never>): Promise<unknown>;
  isInTransaction(): boolean;
}

/**
 * The part of the transaction object PGlite passes to `db.transaction(async (tx) => …)`.
 *
 * ```ts
 * await db.transaction(async (tx: PGliteTransactionLike) => orders.save(order, tx));
 * ```
 */
export interface PGliteTransactionLike {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  exec(text: string): Promise<unknown>;
  rollback(): Promise<void>;
  readonly closed: boolean;
}

/**
 * A PGlite instance, or a transaction PGlite's `transaction()` callback received.
 *
 * ```ts
 * async save(order: Order, session: PGliteSession) { await session.query('INSERT …', [order.id]); }
 * ```
 */
export type PGliteSession = PGliteLike | PGliteTransactionLike;

function isPGlite(session: object): session is PGliteLike {
  const candidate = session as Partial<PGliteLike>;
  return (
    typeof candidate.query === 'function' &&
    typeof candidate.exec === 'function' &&
    typeof candidate.transaction === 'function' &&
    typeof candidate.isInTransaction === 'function'
  );
}

function isPGliteTransaction(session: object): session is PGliteTransactionLike {
  const candidate = session as Partial<PGliteTransactionLike> & { transaction?: unknown };
  return (
    typeof candidate.query === 'function' &&
    typeof candidate.exec === 'function' &&
    typeof candidate.rollback === 'function' &&
    typeof candidate.closed === 'boolean' &&
    candidate.transaction === undefined
  );
}

/**
 * Builds the transaction adapter for PGlite. A PGlite instance is one connection: the library
 * begins and commits on it with `BEGIN` / `COMMIT` (PGlite's own `transaction()` holds a lock
 * the method's queries on the instance would wait for), and runs concurrent decorated calls on
 * it one after the other. The `tx` of `db.transaction(async (tx) => …)` is a transaction the
 * caller owns: calls given `tx` join it; inside that callback, pass `tx`, never the instance
 * (whose queries wait for the callback to end). The txId of a transaction the library begins is
 * its `pg_current_xact_id()`, or with `{ transactionId: 'random' }` (a plain `BEGIN`) a random
 * UUID; in a transaction the caller began, each call gets a random one. A call that joins a
 * transaction (the caller's `tx`, or an instance the caller sent `BEGIN` on) runs inside a
 * savepoint: when it fails, the library rolls back to the savepoint, so nothing of the call stays
 * in the transaction and the caller can go on and commit the rest.
 *
 * ```ts
 * registerTransactionAdapter(createPgliteAdapter({ isolation: 'serializable' }));
 * registerTransactionAdapter(createPgliteAdapter({ transactionId: 'random' }));
 * ```
 */
export function createPgliteAdapter(options: PgAdapterOptions = {}): TransactionAdapter<PGliteSession> {
  const begin = beginSql(options.isolation, options.transactionId);
  const readsId = options.transactionId !== 'random';
  const ids = new WeakMap<PGliteLike, string>();
  const name = options.isolation === undefined ? 'pglite' : `pglite (${options.isolation})`;
  const rollbackQuietly = async (db: PGliteLike): Promise<void> => {
    try {
      if (db.isInTransaction()) await db.exec('ROLLBACK');
    } catch {
      // The error that made us roll back is the one to report.
    }
  };
  const runOnInstance = <R>(db: PGliteLike, work: () => Promise<R>): Promise<R> =>
    exclusively(db, async () => {
      let begun: unknown;
      try {
        begun = await db.exec(begin);
      } catch (error) {
        await rollbackQuietly(db);
        throw error;
      }
      // With transactionId 'random' there is no id to read: the pipeline makes a random UUID.
      const id = readsId ? transactionIdOf(begun) : undefined;
      if (id !== undefined) ids.set(db, id);
      try {
        let result: R;
        try {
          result = await work();
        } catch (error) {
          await rollbackQuietly(db);
          throw error;
        }
        if (!db.isInTransaction()) throw endedError(name);
        let committed: unknown;
        try {
          committed = await db.exec('COMMIT');
        } catch (error) {
          await rollbackQuietly(db);
          throw error;
        }
        if (commitRolledBack(committed)) throw abortedError(name);
        return result;
      } finally {
        ids.delete(db);
      }
    });
  return Object.freeze({
    name,
    matches: (session: unknown): session is PGliteSession =>
      session !== null && typeof session === 'object' && (isPGlite(session) || isPGliteTransaction(session)),
    isActive: (session: PGliteSession) =>
      isPGlite(session) ? session.isInTransaction() && !heldByAnotherCall(session) : !session.closed,
    run: <R>(session: PGliteSession, work: () => Promise<R>): Promise<R> => {
      if (isPGlite(session)) return runOnInstance(session, work);
      if (session.closed) {
        return Promise.reject(
          new TransactionStateError(
            name,
            'TRANSACTION_CLOSED',
            'The PGlite transaction passed as the session has already ended (committed or rolled back). Call the ' +
              'decorated method inside the db.transaction(async (tx) => …) callback, or pass the PGlite instance and ' +
              'let the library run the transaction.',
          ),
        );
      }
      return work();
    },
    join: <R>(session: PGliteSession, work: () => Promise<R>): Promise<R> =>
      inSavepoint(session, async (savepoint) => {
        const open = () => (isPGlite(session) ? session.isInTransaction() : !session.closed);
        await session.exec(`SAVEPOINT ${savepoint}`);
        const rollbackTo = async (): Promise<void> => {
          try {
            await session.exec(`ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`);
          } catch {
            // The error that made us roll back is the one to report.
          }
        };
        let result: R;
        try {
          result = await work();
        } catch (error) {
          if (open()) await rollbackTo();
          throw error;
        }
        if (!open()) throw joinEndedError(name);
        try {
          await session.exec(`RELEASE SAVEPOINT ${savepoint}`);
        } catch (error) {
          // RELEASE fails in an aborted transaction: a statement of the method failed and was caught.
          if (!open()) throw error;
          await rollbackTo();
          throw isAborted(error) ? joinAbortedError(name) : error;
        }
        return result;
      }),
    isConflict: isUniqueViolation,
    isTransient: isRetryableSqlState,
    transactionId: (session: PGliteSession) => (isPGlite(session) ? ids.get(session) : undefined),
  });
}

/** 25P02 in_failed_sql_transaction: the transaction is aborted until it rolls back (to a savepoint). */
function isAborted(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '25P02';
}

/**
 * The built-in adapter for PGlite instances and the transactions of PGlite's `transaction()`.
 *
 * ```ts
 * const db = await PGlite.create();
 * await orders.save(order, db); // BEGIN … COMMIT on db
 * await db.transaction(async (tx) => orders.update(order, tx)); // joins tx
 * ```
 */
export const pgliteAdapter: TransactionAdapter<PGliteSession> = createPgliteAdapter();
