import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { TransactionAdapter } from './adapter.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';

/** @internal Bit 0 of the server status flags that MySQL and MariaDB send in every OK and EOF packet. */
export const SERVER_STATUS_IN_TRANS = 1;

const ER_DUP_ENTRY = 1062;
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;
const ER_SP_DOES_NOT_EXIST = 1305;

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
  /**
   * A session this adapter recognises but refuses (the `mysql` driver's callback connections):
   * the error to throw, or `undefined` for a usable one.
   */
  refuse?(session: C): Error | undefined;
  /** Sends `DO 0` and returns the server status flags of its OK packet. */
  probe(session: C): Promise<number>;
  /** The server status flags after a statement the library sent returned `result`. */
  statusAfter(session: C, result: unknown): number | undefined;
  /**
   * What the driver tells for free of the transaction, given what the library saw after its own
   * last statement: `false` when it has ended for sure, `true` when it is open for sure,
   * `undefined` when only asking the server tells.
   */
  knownOpen(session: C, last: LastStatement | undefined, purpose: Purpose): boolean | undefined;
  /**
   * A value that stays the same while no transaction can have ended on the connection (so two
   * reads that agree prove one transaction lasted between them); `undefined` when unknown.
   */
  joinMarker(session: C): unknown;
}

/** @internal When the library checks that the transaction is open: before the history INSERT, before COMMIT, after the method failed. */
export type Purpose = 'history' | 'commit' | 'failure';

/** @internal The server status flags after the library's last statement on a connection, and what it was. */
export interface LastStatement {
  readonly status: number;
  /** The connection's `joinMarker` right after it; `undefined` when the driver has none. */
  readonly marker: unknown;
  readonly what: 'begin' | 'savepoint' | 'probe' | 'history';
}

/** What the library knows of a transaction it runs or joined on one physical connection. */
interface Tracked {
  readonly adapter: string;
  /** Whether the caller began it (the call joined it) rather than the library. */
  readonly joined: boolean;
  last: LastStatement | undefined;
  check(purpose: Purpose, cause?: unknown): Promise<void>;
  /** After `work` failed: whether the transaction is known to have ended (asking the server when needed). */
  endedAfterFailure(): Promise<boolean>;
  note(result: unknown, what: LastStatement['what']): void;
}

/**
 * The transactions the MySQL-family adapters run or joined, by physical connection, and the
 * traits of each adapter built (both module copies' adapters, when ESM and CJS are loaded).
 */
const tracked = shared('mysql-open-transactions', () => new WeakMap<object, Tracked>());
const families = shared('mysql-family-traits', () => [] as MysqlDriverTraits<MysqlTransactionalConnection>[]);
/** How many savepoints of joined calls are open on each physical connection. */
const savepointDepth = shared('mysql-savepoint-depth', () => new WeakMap<object, number>());

function trackedOf(session: unknown): Tracked | undefined {
  for (const traits of families) {
    if (traits.matches(session)) return tracked.get(traits.connectionOf(session));
  }
  return undefined;
}

/**
 * @internal Before the history INSERT of a call running in a transaction a MySQL-family adapter runs or
 * joined on `session`: makes sure that transaction is still open, so that the INSERT never runs
 * in autocommit. InnoDB rolls back the whole transaction on a deadlock (1213), and CREATE,
 * ALTER, DROP or TRUNCATE commit it implicitly; when the method caught the error or ran the DDL,
 * the connection is back in autocommit. Rejects with `TransactionStateError` 'TRANSACTION_CLOSED'
 * then. Free where the driver knows (mariadb's status flags when clear; mysql2 when nothing was
 * sent since the library's last statement), one `DO 0` round trip otherwise. Does nothing for a
 * connection outside such a transaction.
 */
export async function beforeHistoryWrite(session: unknown): Promise<void> {
  await trackedOf(session)?.check('history');
}

/** @internal After the history INSERT: records the status flags of its OK packet, which the commit check reuses. */
export function afterHistoryWrite(session: unknown, result: unknown): void {
  trackedOf(session)?.note(result, 'history');
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
 * A joined call (the caller's transaction, or a decorated call inside another) runs after
 * `SAVEPOINT event_history_<depth>` and is undone with `ROLLBACK TO SAVEPOINT` when it fails, so
 * the caller can go on and commit its own work without the call's. Savepoints are not released
 * on success: MySQL and MariaDB drop them at COMMIT or ROLLBACK, and the next call at that depth
 * re-declares the name, which replaces it; this keeps a joined call at one round trip more.
 * The caller owns a joined transaction, so its failures are not retried.
 */
export function createMysqlFamilyAdapter<C extends MysqlTransactionalConnection>(
  traits: MysqlDriverTraits<C>,
): TransactionAdapter<C> {
  families.push(traits as unknown as MysqlDriverTraits<MysqlTransactionalConnection>);
  /** Connections with a transaction this adapter runs or joined, with the txId of a joined one. */
  const active = new WeakMap<object, string | undefined>();
  /** The txId of the last call that joined a caller's transaction, and the connection's marker after it. */
  const lastJoin = new WeakMap<object, { readonly txId: string; readonly marker: unknown }>();
  const joinedFailures = new WeakSet<object>();

  const refuse = (session: C): void => {
    const error = traits.refuse?.(session);
    if (error !== undefined) throw error;
  };

  const track = (session: C, connection: object, joined: boolean): Tracked => {
    const entry: Tracked = {
      adapter: traits.name,
      joined,
      last: undefined,
      check: async (purpose, cause) => {
        let open = traits.knownOpen(session, entry.last, purpose);
        if (open === undefined) {
          const status = await traits.probe(session);
          entry.last = { status, marker: traits.joinMarker(session), what: 'probe' };
          open = (status & SERVER_STATUS_IN_TRANS) !== 0;
        }
        if (!open) throw endedError(traits.name, entry.joined, purpose, cause);
      },
      endedAfterFailure: async () => {
        try {
          await entry.check('failure');
          return false;
        } catch (error) {
          // A probe that failed (a lost connection) proves nothing: the method's error is reported.
          return error instanceof TransactionStateError;
        }
      },
      note: (result, what) => {
        const status = traits.statusAfter(session, result);
        entry.last = status === undefined ? undefined : { status, marker: traits.joinMarker(session), what };
      },
    };
    tracked.set(connection, entry);
    return entry;
  };

  /** Runs `work` after a savepoint, rolling back to it when `work` rejects. */
  const withSavepoint = async <R>(session: C, connection: object, entry: Tracked, work: () => Promise<R>) => {
    const depth = (savepointDepth.get(connection) ?? 0) + 1;
    const name = `event_history_${depth}`;
    entry.note(await session.query(`SAVEPOINT ${name}`), 'savepoint');
    savepointDepth.set(connection, depth);
    try {
      return await work();
    } catch (error) {
      let gone = false;
      try {
        entry.note(await session.query(`ROLLBACK TO SAVEPOINT ${name}`), 'savepoint');
      } catch (rollbackError) {
        // 1305 (no such savepoint): the transaction itself is gone (a deadlock rolled it back, or
        // a statement committed it).
        gone = errnoOf(rollbackError) === ER_SP_DOES_NOT_EXIST;
      }
      if (gone && !keepsTransaction(error)) throw endedError(traits.name, entry.joined, 'failure', error);
      throw error;
    } finally {
      if (depth === 1) savepointDepth.delete(connection);
      else savepointDepth.set(connection, depth - 1);
    }
  };

  const markFinal = (error: unknown): void => {
    // The deadlock victim's whole transaction is gone, and it was the caller's: retrying here
    // would run the call outside any transaction. Mark the error (and its causes) as final.
    for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
      joinedFailures.add(e);
      e = (e as { cause?: unknown }).cause;
    }
  };

  const joinCaller = async <R>(session: C, connection: object, sameAsLast: boolean, work: () => Promise<R>) => {
    const txId = (sameAsLast ? lastJoin.get(connection)?.txId : undefined) ?? randomUUID();
    active.set(connection, txId);
    const entry = track(session, connection, true);
    try {
      const result = await withSavepoint(session, connection, entry, work);
      await entry.check('commit');
      return result;
    } catch (error) {
      markFinal(error);
      throw error;
    } finally {
      active.delete(connection);
      tracked.delete(connection);
      const after = traits.joinMarker(session);
      if (after === undefined) lastJoin.delete(connection);
      else lastJoin.set(connection, { txId, marker: after });
    }
  };

  const own = async <R>(session: C, connection: object, work: () => Promise<R>): Promise<R> => {
    lastJoin.delete(connection);
    const begun = await session.beginTransaction();
    active.set(connection, undefined);
    const entry = track(session, connection, false);
    entry.note(begun, 'begin');
    try {
      let result: R;
      try {
        result = await work();
        await entry.check('commit');
      } catch (error) {
        const ended = keepsTransaction(error) ? false : await entry.endedAfterFailure();
        await rollbackQuietly(session);
        if (ended) throw endedError(traits.name, false, 'failure', error);
        throw error;
      }
      try {
        await session.commit();
      } catch (error) {
        await rollbackQuietly(session);
        throw isLockFailure(error) ? certificationFailure(traits.name, error) : error;
      }
      return result;
    } finally {
      active.delete(connection);
      tracked.delete(connection);
    }
  };

  const run = <R>(session: C, work: () => Promise<R>): Promise<R> => {
    refuse(session);
    const connection = traits.connectionOf(session);
    return exclusively(connection, async () => {
      // Calls joining one transaction of the caller share its txId. Another transaction may
      // have begun since the last such call, unless the connection's marker (read before the
      // probe below sends anything) proves that none ended in between.
      const last = lastJoin.get(connection);
      const before = last === undefined ? undefined : traits.joinMarker(session);
      const sameAsLast = last !== undefined && before !== undefined && Object.is(before, last.marker);
      return (await inTransaction(traits, session))
        ? joinCaller(session, connection, sameAsLast, work)
        : own(session, connection, work);
    });
  };

  return Object.freeze({
    name: traits.name,
    matches: (session: unknown): session is C => traits.matches(session),
    isActive: (session: C) => {
      refuse(session);
      const connection = traits.connectionOf(session);
      return active.has(connection) && !heldByAnotherCall(connection);
    },
    run,
    join: async <R>(session: C, work: () => Promise<R>): Promise<R> => {
      refuse(session);
      const connection = traits.connectionOf(session);
      const entry = tracked.get(connection);
      if (entry === undefined) {
        // Not inside a transaction of ours: only `run` can tell the caller's from none.
        return run(session, work);
      }
      try {
        return await withSavepoint(session, connection, entry, work);
      } catch (error) {
        if (entry.joined) markFinal(error);
        throw error;
      } finally {
        // The enclosing method goes on sending statements the library does not see.
        entry.last = undefined;
      }
    },
    isConflict: isDuplicateEntry,
    isTransient: (error: unknown) => isLockFailure(error) && !joinedFailures.has(error as object),
    transactionId: (session: C) => active.get(traits.connectionOf(session)),
  });
}

/**
 * A deadlock or lock wait error on COMMIT itself, where InnoDB takes no lock: on Galera, the
 * certification failure of a transaction that another node committed a conflicting write before
 * (ER_LOCK_DEADLOCK 1213 at COMMIT). The cluster rolled the whole transaction back, so nothing of
 * it was kept: the call that owns it runs again, from the entity as it was passed, which either
 * commits or meets the other node's write as a `VersionConflictError`. It is not a deadlock inside
 * the method, and it names what happened when the retries run out. The driver's error is `cause`,
 * which is what marks it transient.
 */
function certificationFailure(adapter: string, cause: unknown): TransactionStateError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new TransactionStateError(
    adapter,
    'COMMIT_CONFLICT',
    `COMMIT failed with a lock error (${reason}): on a Galera cluster, the certification failure of a transaction ` +
      'that wrote rows another node committed first. The cluster rolled it back, so nothing of it was kept. ' +
      'A call that owns its transaction runs again (see retries), and then commits or reports the lost race as ' +
      'VersionConflictError; reload the entity and apply the change again.',
    { cause },
  );
}

/**
 * Errors reported as they are even when the transaction is gone: a deadlock or lock wait timeout
 * (retried by a call that owns its transaction), the library's own TRANSACTION_CLOSED.
 */
function keepsTransaction(error: unknown): boolean {
  return isLockFailure(error) || error instanceof TransactionStateError;
}

/** Whether the server has a transaction open on the connection, asking it when the driver does not know. */
async function inTransaction<C extends MysqlTransactionalConnection>(
  traits: MysqlDriverTraits<C>,
  session: C,
): Promise<boolean> {
  if (traits.knownOpen(session, undefined, 'history') === false) return false;
  return ((await traits.probe(session)) & SERVER_STATUS_IN_TRANS) !== 0;
}

function endedError(adapter: string, joined: boolean, purpose: Purpose, cause?: unknown): TransactionStateError {
  const whose = joined ? 'The transaction you began on the connection' : 'The transaction the library began';
  const when = {
    history:
      'had already ended when the decorated method returned, before the history entry was written, so none was: ' +
      'the library never writes history outside the transaction.',
    commit: joined
      ? 'had already ended when the decorated method returned, so the call does not report success.'
      : 'had already ended when the decorated method returned, before the library could commit it, so the call does not report success.',
    failure:
      'had already ended inside the decorated method, which then failed (see cause), so no history was written and ' +
      'rolling back could not undo what the method wrote before the transaction ended.',
  }[purpose];
  return new TransactionStateError(
    adapter,
    'TRANSACTION_CLOSED',
    `${whose} ${when} ` +
      'Either the method caught a deadlock (1213) or lock wait timeout that made InnoDB roll the whole transaction back ' +
      '(the writes before it are gone), or a statement that commits implicitly (CREATE, ALTER, DROP, TRUNCATE, RENAME, ' +
      'LOCK TABLES) or a COMMIT or ROLLBACK ran on the connection (what was written before it was committed or rolled back ' +
      'by the server, without history). Any statement after that ran in autocommit and was kept. ' +
      "The entity's version and timestamp were restored. " +
      'Let deadlock errors propagate out of decorated methods (a call that owns its transaction retries them), run DDL ' +
      'outside them, and do not end the transaction inside one; re-read the entity to see what the database holds.',
    cause === undefined ? undefined : { cause },
  );
}
