import { type CommitInFlight, ConnectionLostError } from '../errors.js';
import type { HistoryEntry, HistoryReader } from './entry.js';

/**
 * Whether a call whose COMMIT was in flight committed: `'committed'` (its history entry is
 * there, with its txId), `'not-committed'` (it is not, and cannot appear any more: run the call
 * again), or `'unknown'` (its transaction may still be in progress; ask again later). `reason`
 * says how the store knows; `entry` is the entry stored at that key, the call's or another's.
 *
 * ```ts
 * const { status, reason } = await commitOutcome(history, error);
 * ```
 */
export interface CommitOutcome {
  readonly status: 'committed' | 'not-committed' | 'unknown';
  readonly reason: string;
  readonly entry?: HistoryEntry;
}

/**
 * Options of {@link commitOutcome}.
 *
 * ```ts
 * await commitOutcome(history, error, { waitMs: 5_000 });
 * ```
 */
export interface CommitOutcomeOptions {
  /**
   * How long to wait for the call's transaction to end on the server when it is still in
   * progress (a COMMIT still on its way, a session the server has not yet seen die). Default
   * 30 000 ms; after it the answer is `'unknown'`. (The MySQL store waits as long as the server's
   * `innodb_lock_wait_timeout` instead.)
   */
  readonly waitMs?: number;
}

/**
 * A store that can tell, on its own connection, whether a call whose COMMIT was in flight
 * committed, waiting until the call's transaction can no longer be in progress. The built-in
 * PostgreSQL, MySQL and SQLite stores and the memory store have it.
 *
 * ```ts
 * class MyStore implements HistoryReader, CommitOutcomeReader { async commitOutcome(inFlight) { … } }
 * ```
 */
export interface CommitOutcomeReader {
  commitOutcome(inFlight: CommitInFlight, options?: CommitOutcomeOptions): Promise<CommitOutcome>;
}

/**
 * Tells whether a call that failed with {@link ConnectionLostError} while its COMMIT was in
 * flight committed, read on the store's own (fresh) connection from the history key the error
 * carries (`inFlight`: entity type, id, version) and the txId the call recorded. Where the store
 * can, it first waits until that transaction can no longer be in progress, so that
 * `'not-committed'` is final: the call's change is not in the database and never will be, and
 * running the call again has the effect of exactly one call. How each store knows:
 *
 * - PostgreSQL: `pg_xact_status(txId)` (txIds are the database's transaction ids by default),
 *   checked against the entry at the key;
 * - MySQL / MariaDB: a locking read of the key, which waits for an uncommitted insert of it
 *   (up to `innodb_lock_wait_timeout`);
 * - SQLite and the memory store: a plain read (a SQLite transaction ends with its connection);
 * - any other reader: a plain read, which proves a commit but not its absence (`'unknown'`).
 *
 * ```ts
 * try {
 *   await orders.update(order, client);
 * } catch (e) {
 *   if (!(e instanceof ConnectionLostError)) throw e;
 *   client.release(true);
 *   const { status } = await commitOutcome(history, e);
 *   if (status === 'not-committed') await orders.update(order, await pool.connect());
 * }
 * ```
 */
export async function commitOutcome(
  store: HistoryReader | CommitOutcomeReader,
  call: ConnectionLostError | CommitInFlight,
  options: CommitOutcomeOptions = {},
): Promise<CommitOutcome> {
  let inFlight: CommitInFlight;
  if (call instanceof ConnectionLostError) {
    if (call.outcome === 'rolled-back') {
      return {
        status: 'not-committed',
        reason: 'the connection broke before COMMIT was sent, so the database rolled the transaction back',
      };
    }
    if (call.inFlight === undefined) {
      return {
        status: 'unknown',
        reason: 'the call wrote no history entry, so there is no key to look up: re-read the entity',
      };
    }
    inFlight = call.inFlight;
  } else {
    inFlight = call;
  }
  assertInFlight(inFlight);
  if (typeof (store as Partial<CommitOutcomeReader>).commitOutcome === 'function') {
    return (store as CommitOutcomeReader).commitOutcome(inFlight, options);
  }
  const reader = store as HistoryReader & { readonly transactional?: boolean };
  const entry = await reader.at(inFlight.entityType, inFlight.entityId, inFlight.version);
  return outcomeFromEntry(
    inFlight,
    entry,
    reader.transactional === false ? 'the store writes at once, outside transactions' : undefined,
  );
}

/**
 * @internal The outcome given the entry stored at the call's key, read once no transaction of
 * the call can be in progress any more (`settled` says why that holds) or without that proof.
 */
export function outcomeFromEntry(
  inFlight: CommitInFlight,
  entry: HistoryEntry | undefined,
  settled: string | undefined,
): CommitOutcome {
  const key = `${inFlight.entityType} ${inFlight.entityId} version ${inFlight.version}`;
  if (entry !== undefined && entry.txId === inFlight.txId) {
    return { status: 'committed', reason: `the history holds ${key} written by transaction ${inFlight.txId}`, entry };
  }
  if (entry !== undefined) {
    return {
      status: 'not-committed',
      reason:
        `the history holds ${key} from another transaction (${entry.txId ?? 'no txId'}); its unique key keeps ` +
        'the call out: reload the entity and apply the change again',
      entry,
    };
  }
  if (settled !== undefined) {
    return { status: 'not-committed', reason: `the history has no ${key}, and ${settled}` };
  }
  return {
    status: 'unknown',
    reason:
      `the history has no ${key} yet, but this store cannot prove that the transaction has ended: ask again ` +
      'once the server has surely dropped the broken session',
  };
}

function assertInFlight(inFlight: CommitInFlight): void {
  if (
    inFlight === null ||
    typeof inFlight !== 'object' ||
    typeof inFlight.entityType !== 'string' ||
    typeof inFlight.entityId !== 'string' ||
    !Number.isInteger(inFlight.version) ||
    typeof inFlight.txId !== 'string'
  ) {
    throw new TypeError(
      "commitOutcome needs a ConnectionLostError or { entityType, entityId, version, txId } (the error's inFlight).",
    );
  }
}

/** @internal Waits `ms` milliseconds between two looks at a transaction still in progress. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
