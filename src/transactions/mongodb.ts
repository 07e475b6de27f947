import { ambient } from '../context.js';
import { SessionEndedError, TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { joinSerially } from './savepoint.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';

/**
 * The part of the MongoDB driver's `ClientSession` the library uses, declared here so the
 * core never imports `mongodb`. A real `ClientSession` (driver 5 and later) satisfies it.
 *
 * ```ts
 * const session: MongoSessionLike = client.startSession();
 * ```
 */
export interface MongoSessionLike {
  readonly hasEnded: boolean;
  /** The logical session id the driver sends as `lsid`: `{ id: Binary }`. */
  readonly id?: { readonly id?: { readonly buffer?: Uint8Array } } | undefined;
  startTransaction(options?: object): void;
  commitTransaction(options?: object): Promise<unknown>;
  abortTransaction(options?: object): Promise<unknown>;
  inTransaction(): boolean;
}

/** Driver internals read for the transaction id only; absent fields just mean no id. */
interface SessionInternals {
  readonly serverSession?: { readonly txnNumber?: unknown };
  readonly txnNumberIncrement?: unknown;
}

const DUPLICATE_KEY = new Set([11000, 11001]);
const WRITE_CONFLICT = 112;
const TRANSIENT_LABELS = ['TransientTransactionError', 'UnknownTransactionCommitResult'] as const;
/** How many times a commit whose outcome is unknown is sent again before giving up. */
const COMMIT_RETRIES = 2;

/**
 * The built-in adapter for the MongoDB driver's `ClientSession`. It drives the transaction with
 * `startTransaction` / `commitTransaction` / `abortTransaction` rather than `withTransaction`,
 * whose own retry loop would hide transient failures from the library's. A `ClientSession` holds
 * one transaction at a time: concurrent decorated calls on one session run one after the other,
 * each in its own transaction, rather than one joining (and being aborted with) the other's.
 * MongoDB has no savepoints: a call that joins a transaction the caller started and fails aborts
 * that whole transaction (so the caller's `commitTransaction` fails instead of committing half of
 * the call) and rejects with a `TransactionStateError` (`TRANSACTION_ABORTED`) whose cause is the
 * call's error.
 *
 * ```ts
 * const session = client.startSession();
 * await orders.save(order, session); // begins, writes entity and history, commits
 * ```
 */
export const mongodbAdapter: TransactionAdapter<MongoSessionLike> = {
  name: 'mongodb',
  matches: isMongoSession,
  isActive: (session) => session.inTransaction() && !heldByAnotherCall(session),
  run(session, work) {
    if (session.hasEnded) return Promise.reject(new SessionEndedError('MongoDB ClientSession'));
    return exclusively(session, async () => {
      if (session.hasEnded) throw new SessionEndedError('MongoDB ClientSession');
      session.startTransaction();
      let result: Awaited<ReturnType<typeof work>>;
      try {
        result = await work();
      } catch (error) {
        await abortQuietly(session);
        throw error;
      }
      await commit(session);
      return result;
    });
  },
  join(session, work) {
    // Inside a call of ours that holds the session (the one that owns the transaction, or an
    // enclosing joined call), the error goes to that call as it is: the transaction is aborted
    // either way, and that call reports it. Only the caller's own transaction needs the warning.
    const enclosed = ambient()?.held?.some((hold) => hold.session === session && !hold.released) === true;
    return joinSerially(session, async () => {
      try {
        return await work();
      } catch (error) {
        await abortQuietly(session);
        throw enclosed ? error : abortedByJoin(error);
      }
    });
  },
  isConflict(error) {
    const code = codeOf(error);
    return code !== undefined && (DUPLICATE_KEY.has(code) || code === WRITE_CONFLICT);
  },
  isTransient: (error) => TRANSIENT_LABELS.some((label) => hasLabel(error, label)),
  transactionId(session) {
    try {
      const bytes = session.id?.id?.buffer;
      const internals = session as unknown as SessionInternals;
      const base = internals.serverSession?.txnNumber;
      if (!(bytes instanceof Uint8Array) || typeof base !== 'number') return undefined;
      // startTransaction only records the increment; the driver adds it when it sends the first command.
      const pending = typeof internals.txnNumberIncrement === 'number' ? internals.txnNumberIncrement : 0;
      return `${toHex(bytes)}:${base + pending}`;
    } catch {
      return undefined;
    }
  },
};

function isMongoSession(session: unknown): session is MongoSessionLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Record<string, unknown>;
  return (
    typeof candidate.hasEnded === 'boolean' &&
    typeof candidate.startTransaction === 'function' &&
    typeof candidate.commitTransaction === 'function' &&
    typeof candidate.abortTransaction === 'function' &&
    typeof candidate.inTransaction === 'function' &&
    typeof candidate.withTransaction === 'function'
  );
}

async function commit(session: MongoSessionLike): Promise<void> {
  for (let retry = 0; ; retry++) {
    try {
      await session.commitTransaction();
      return;
    } catch (error) {
      // The driver allows sending commitTransaction again after an unknown outcome; the server
      // answers it idempotently. Any other failure has already ended the transaction.
      if (retry >= COMMIT_RETRIES || !hasLabel(error, 'UnknownTransactionCommitResult')) throw error;
    }
  }
}

/** Aborts if the transaction is still open; a failing abort must not replace the error that caused it. */
async function abortQuietly(session: MongoSessionLike): Promise<void> {
  try {
    if (session.inTransaction()) await session.abortTransaction();
  } catch {
    // The server aborts an abandoned transaction on its own (transactionLifetimeLimitSeconds).
  }
}

function abortedByJoin(error: unknown): TransactionStateError {
  const reason = error instanceof Error ? error.message : String(error);
  return new TransactionStateError(
    'mongodb',
    'TRANSACTION_ABORTED',
    `A decorated call inside your MongoDB transaction failed (${reason}). MongoDB has no savepoints to undo only ` +
      'that call, so your whole transaction was aborted: commitTransaction will fail and nothing of it is kept. ' +
      "Start the transaction again to retry; the call's own error is the cause.",
    { cause: error },
  );
}

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

function codeOf(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function hasLabel(error: unknown, label: string): boolean {
  if (error === null || typeof error !== 'object') return false;
  const candidate = error as { hasErrorLabel?: unknown; errorLabels?: unknown };
  if (typeof candidate.hasErrorLabel === 'function') {
    try {
      if ((candidate.hasErrorLabel as (label: string) => unknown).call(error, label) === true) return true;
    } catch {
      // A foreign hasErrorLabel that throws just means "no".
    }
  }
  return Array.isArray(candidate.errorLabels) && candidate.errorLabels.includes(label);
}
