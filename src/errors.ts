/**
 * The error codes every {@link EventHistoryError} carries. They are stable: match on `code`
 * rather than on `instanceof` when two copies of the library may be loaded (ESM and CJS).
 */
export type EventHistoryErrorCode =
  | 'DECORATOR_ERROR'
  | 'MISSING_SESSION'
  | 'UNSUPPORTED_SESSION'
  | 'SESSION_ENDED'
  | 'INVALID_ENTITY'
  | 'VERSION_CONFLICT'
  | 'HISTORY_WRITE_FAILED'
  | 'CONNECTION_LOST'
  | 'RETRY_EXHAUSTED'
  | 'TRANSACTION_RETRIES_EXHAUSTED'
  | 'REVERT_FAILED'
  | TransactionStateErrorCode;

/**
 * What went wrong with a transaction; see {@link TransactionStateError}.
 *
 * ```ts
 * if (error instanceof TransactionStateError && error.code === 'TRANSACTION_STATUS_UNKNOWN') upgradePg();
 * ```
 */
export type TransactionStateErrorCode =
  | 'TRANSACTION_ABORTED'
  | 'TRANSACTION_CLOSED'
  | 'TRANSACTION_STATUS_UNKNOWN'
  | 'COMMIT_FAILED'
  | 'COMMIT_CONFLICT'
  | 'OUTSIDE_TRANSACTION';

/**
 * Base class of every error the library throws.
 *
 * ```ts
 * try { await orders.update(order, session); }
 * catch (e) { if (e instanceof EventHistoryError) log(e.code, e.message); }
 * ```
 */
export class EventHistoryError extends Error {
  readonly code: EventHistoryErrorCode;

  constructor(code: EventHistoryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    // The library's classes this error is an instance of, by their stable names: `instanceof`
    // then holds across copies of the library (see `Symbol.hasInstance` below).
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      if (Object.hasOwn(c, KIND)) kinds.push((c as unknown as Record<symbol, string>)[KIND] as string);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds), enumerable: false });
  }

  /**
   * `error instanceof VersionConflictError` is true for a conflict thrown by any copy of the
   * library loaded in the process (the ESM and the CommonJS build side by side, as a NestJS app
   * compiled to CommonJS next to an ESM tool easily has), not only this copy's: the check reads
   * the stable class names each error records. Subclasses of your own keep the usual check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // `this` is the class asked about (a subclass inherits this method), not EventHistoryError.
    // biome-ignore lint/complexity/noThisInStatic: the receiver is the class on the right of instanceof
    const asked: object = this;
    if (!Object.hasOwn(asked, KIND)) return Function.prototype[Symbol.hasInstance].call(asked, value);
    if (value === null || typeof value !== 'object') return false;
    const kinds = (value as Record<symbol, unknown>)[KINDS];
    if (Array.isArray(kinds)) return kinds.includes((asked as Record<symbol, string>)[KIND]);
    return Function.prototype[Symbol.hasInstance].call(asked, value);
  }
}

/** The stable name a library error class is known by in every copy of the library. */
const KIND = Symbol.for('event-history:error-class');
/** On each error: the stable names of the library classes it is an instance of. */
const KINDS = Symbol.for('event-history:error-classes');

function brand(errorClass: abstract new (...args: never[]) => EventHistoryError, name: string): void {
  Object.defineProperty(errorClass, KIND, { value: name, enumerable: false });
}

/**
 * A decorator was applied where it cannot work: a listed method the class lacks, an operation
 * that cannot be inferred from the method name, a getter or field, or a history source that
 * cannot be resolved. Thrown when the class is defined, or at the first call for sources.
 *
 * ```ts
 * @Versioned({ methods: { store: 'create' } }) // DecoratorError if the class has no `store`
 * ```
 */
export class DecoratorError extends EventHistoryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DECORATOR_ERROR', message, options);
  }
}

/**
 * A decorated call found no session: no session argument, no `{ session }` options object
 * and no ambient session from `runInSession`.
 *
 * ```ts
 * await orders.save(order, session); // pass the session, or wrap the call in runInSession
 * ```
 */
export class MissingSessionError extends EventHistoryError {
  readonly method: string;

  constructor(method: string) {
    super(
      'MISSING_SESSION',
      `${method} was called without a session, so its entity write and history write cannot share a transaction. ` +
        'Pass the session as the argument the method takes (or as { session }), wrap the call in runInSession(session, fn), ' +
        'or, if you accept writes without a transaction, set requireSession: false on the decorator.',
    );
    this.method = method;
  }
}

/**
 * No registered transaction adapter recognises the session object.
 *
 * ```ts
 * registerTransactionAdapter({ name: 'my-db', matches: (s): s is MySession => s instanceof MySession, ... });
 * ```
 */
export class UnsupportedSessionError extends EventHistoryError {
  readonly sessionType: string;

  /** `advice`, when given, replaces the general advice: what to pass instead of this kind of session. */
  constructor(sessionType: string, known: readonly string[], options?: { advice?: string }) {
    super(
      'UNSUPPORTED_SESSION',
      options?.advice === undefined
        ? `No transaction adapter recognises a session of type ${sessionType} (adapters tried: ${known.join(', ') || 'none'}). ` +
            'Pass the driver session itself (a MongoDB ClientSession, a pg client or pool, a mysql2 or mariadb connection or pool, ' +
            'a better-sqlite3 Database), ' +
            'or register an adapter for this type with registerTransactionAdapter({ name, matches, isActive, run }).'
        : `A session of type ${sessionType} is not supported. ${options.advice}`,
    );
    this.sessionType = sessionType;
  }
}

/**
 * The session passed to a decorated call has already ended (a MongoDB `ClientSession` after
 * `endSession()`), so no transaction can run on it. Nothing was called and nothing was written.
 *
 * ```ts
 * const session = client.startSession();
 * try { await orders.save(order, session); } finally { await session.endSession(); } // end it after, not before
 * ```
 */
export class SessionEndedError extends EventHistoryError {
  readonly sessionType: string;

  constructor(sessionType: string) {
    super(
      'SESSION_ENDED',
      `The ${sessionType} given to this call has already ended, so it cannot run a transaction. ` +
        'Start a new session (client.startSession()) for the call, and end a session only after the calls that use it.',
    );
    this.sessionType = sessionType;
  }
}

/**
 * The entity passed to a decorated method cannot be versioned: not an object, frozen, without
 * an integer version or an id on update/delete, or with a snapshot that cannot be copied.
 * Nothing was called and nothing was written.
 *
 * ```ts
 * await orders.update({ ...order, version: undefined }, session); // InvalidEntityError
 * ```
 */
export class InvalidEntityError extends EventHistoryError {
  readonly entityType: string | undefined;
  /**
   * The call got no entity object at all where the decorator looks for one (a decorator on the
   * wrong method, or the wrong `entityIndex`): a mistake in the code, not in the data it was given.
   * The NestJS filter answers it with a logged 500 rather than a 400.
   */
  readonly programmingError: boolean;

  constructor(message: string, entityType?: string, options?: { cause?: unknown; programmingError?: boolean }) {
    super('INVALID_ENTITY', message, options);
    this.entityType = entityType;
    this.programmingError = options?.programmingError === true;
  }
}

/**
 * Another writer changed the entity first: the guarded write matched nothing, or the history
 * already holds this version. Re-read the entity and apply the change again. A create whose
 * entity already exists (its row, or version 1 of its history) is one too, with `duplicate` set
 * and a message of its own: there is nothing to reload, the id is taken.
 *
 * ```ts
 * catch (e) { if (e instanceof VersionConflictError && !e.duplicate) order = await reload(e.entityId); }
 * ```
 */
export class VersionConflictError extends EventHistoryError {
  readonly entityType: string;
  readonly entityId: string;
  readonly expectedVersion: number | undefined;
  /** A create found the entity already there (its id taken), rather than a concurrent change. */
  readonly duplicate: boolean;

  constructor(
    entityType: string,
    entityId: string,
    expectedVersion: number | undefined,
    options?: { cause?: unknown; detail?: string; duplicate?: boolean },
  ) {
    const detail = options?.detail ? ` (${options.detail})` : '';
    const expected = expectedVersion === undefined ? '' : ` at version ${expectedVersion}`;
    super(
      'VERSION_CONFLICT',
      options?.duplicate === true
        ? `${entityType} ${entityId} already exists${detail}, so it cannot be created again. Nothing of this call was ` +
            'kept: update the existing entity instead, or create this one under an id of its own.'
        : `${entityType} ${entityId}${expected} was changed by another writer${detail}. ` +
            'Nothing of this call was kept: reload the entity and apply the change again.',
      options,
    );
    this.entityType = entityType;
    this.entityId = entityId;
    this.expectedVersion = expectedVersion;
    this.duplicate = options?.duplicate === true;
  }
}

/**
 * The history writer failed for a reason other than a version conflict. The transaction was
 * rolled back; `cause` holds the writer's error.
 *
 * ```ts
 * catch (e) { if (e instanceof HistoryWriteError) console.error(e.cause); }
 * ```
 */
export class HistoryWriteError extends EventHistoryError {
  readonly entityType: string;
  readonly entityId: string;
  readonly version: number;

  constructor(entityType: string, entityId: string, version: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      'HISTORY_WRITE_FAILED',
      `Writing history for ${entityType} ${entityId} version ${version} failed: ${reason}. ` +
        'The entity write was rolled back with it; fix the history writer (see cause) and retry the call.',
      { cause },
    );
    this.entityType = entityType;
    this.entityId = entityId;
    this.version = version;
  }
}

/**
 * A transaction could not be committed or used as it stood: the database had already aborted it
 * (`TRANSACTION_ABORTED`), it was ended inside the call or the transaction object passed as the
 * session was closed (`TRANSACTION_CLOSED`), or the session cannot tell whether it is inside a
 * transaction (`TRANSACTION_STATUS_UNKNOWN`: an old or native pg client), or the database refused the COMMIT
 * (`COMMIT_FAILED`, the driver's error as `cause`), or COMMIT lost a race with another cluster node
 * (`COMMIT_CONFLICT`: a Galera certification failure, ER_LOCK_DEADLOCK at COMMIT; a call that owns its
 * transaction runs again, and reports this only as the cause of `TransactionRetriesExhaustedError`),
 * or a unit of work saw a tracked write it cannot keep inside its transaction (`OUTSIDE_TRANSACTION`:
 * another connection, a query-builder update). Nothing of the call was kept.
 *
 * ```ts
 * catch (e) { if (e instanceof TransactionStateError && e.code === 'TRANSACTION_ABORTED') retryLater(); }
 * ```
 */
export class TransactionStateError extends EventHistoryError {
  declare readonly code: TransactionStateErrorCode;
  /** The name of the transaction adapter that noticed it. */
  readonly adapter: string;

  constructor(adapter: string, code: TransactionStateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.adapter = adapter;
  }
}

/**
 * What a call whose COMMIT was in flight when its connection broke had written: the key of its
 * history entry and the id of its transaction. Hand it (or the {@link ConnectionLostError}
 * carrying it) to `commitOutcome(store, …)` to learn whether the call committed.
 *
 * ```ts
 * catch (e) { if (e instanceof ConnectionLostError && e.inFlight) log(e.inFlight.txId); }
 * ```
 */
export interface CommitInFlight {
  readonly entityType: string;
  readonly entityId: string;
  /** The version the call's history entry holds (the entity's new version). */
  readonly version: number;
  /** The transaction id the call recorded in its history entry (`HistoryEntry.txId`). */
  readonly txId: string;
}

/**
 * The session's database connection was lost or closed during the call (the server ended it,
 * the network cut it, or the connection, client or database had been closed before the call);
 * `cause` holds the driver's error. The database rolls back a transaction whose connection is
 * gone, so nothing of the call was kept, unless the loss came while COMMIT was already on its
 * way: then `inFlight` is set, and `commitOutcome(store, error)` answers, on a fresh connection,
 * whether the call committed. The entity's version and timestamp were restored. Do not use the
 * connection again: release it to its pool, which discards a broken connection.
 *
 * ```ts
 * catch (e) {
 *   if (!(e instanceof ConnectionLostError)) throw e;
 *   client.release(true);
 *   const { status } = e.inFlight ? await commitOutcome(history, e) : { status: 'not-committed' };
 *   if (status === 'not-committed') await orders.update(order, await pool.connect()); // run it again
 * }
 * ```
 */
export class ConnectionLostError extends EventHistoryError {
  /** The name of the transaction adapter of the session, when one was found. */
  readonly adapter: string | undefined;
  /**
   * `'rolled-back'`: the connection broke before the call's COMMIT was sent, so the database
   * rolled the transaction back. `'unknown'`: it broke while COMMIT was in flight.
   */
  readonly outcome: 'rolled-back' | 'unknown';
  /**
   * With outcome `'unknown'`, the key of the history entry the call wrote and its txId: what
   * `commitOutcome` needs to tell whether the call committed. Unset when the call wrote no history.
   */
  readonly inFlight: CommitInFlight | undefined;

  /** `commit` says that COMMIT was in flight: `true`, or what the call wrote (see `inFlight`). */
  constructor(adapter: string | undefined, cause: unknown, commit?: CommitInFlight | true) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const inFlight = commit === undefined || commit === true ? undefined : Object.freeze({ ...commit });
    const written =
      inFlight === undefined ? '' : ` ${inFlight.entityType} ${inFlight.entityId} version ${inFlight.version}`;
    super(
      'CONNECTION_LOST',
      `The database connection of this ${adapter ?? 'session'} was lost or closed during the call (${reason}). ` +
        (commit === undefined
          ? 'Its transaction was rolled back, so nothing of the call was kept: release the connection (its pool ' +
            'discards a broken one) and retry with a new one.'
          : `It broke while COMMIT was in flight, so the call may have committed${written}: ` +
            (inFlight === undefined ? 're-read the entity' : 'ask commitOutcome(store, error)') +
            ' to learn whether it did before running it again, and release the connection (its pool discards a broken one).'),
      { cause },
    );
    this.adapter = adapter;
    this.outcome = commit === undefined ? 'rolled-back' : 'unknown';
    this.inFlight = inFlight;
  }
}

/**
 * `retryOnConflict` ran out of attempts: every attempt lost its race with another writer.
 * `cause` holds the last attempt's {@link VersionConflictError}.
 *
 * ```ts
 * catch (e) { if (e instanceof RetryExhaustedError) respond(409, e.message); }
 * ```
 */
export class RetryExhaustedError extends EventHistoryError {
  readonly attempts: number;

  constructor(attempts: number, cause: VersionConflictError) {
    super(
      'RETRY_EXHAUSTED',
      `Gave up after ${attempts} attempts, each of which lost a race with another writer (last: ${cause.message}) ` +
        'Nothing of the failed attempts was kept. Raise attempts, spread the writers out, or report the conflict to the user.',
      { cause },
    );
    this.attempts = attempts;
  }
}

/**
 * A call that owns its transaction kept failing with an error the database says is worth
 * retrying (a serialization failure, 40001; a deadlock, 40P01 or 1213; a lock wait timeout) and
 * ran out of attempts (`@Versioned({ retries })`, default 3; with `retries: 0` the first such
 * failure). Every attempt was rolled back: nothing of the call was kept in the database. Unless
 * `notRetried` is set, the entity was restored too, to what the caller passed.
 *
 * `notRetried` says why a call was not run again although it had attempts left: its entity holds
 * state the library cannot put back (a class with `#private` fields, a `URL`, an own getter or
 * setter, a part the method froze), so a second run could apply the method's change twice. Then
 * only the entity's `version` and `timestamp` were restored, as after any other failure. Reload
 * the entity and call again, or pass plain data. `cause` holds the last attempt's driver error.
 *
 * ```ts
 * catch (e) { if (e instanceof TransactionRetriesExhaustedError) respond(409, 'busy, try again'); }
 * ```
 */
export class TransactionRetriesExhaustedError extends EventHistoryError {
  /** The name of the transaction adapter. */
  readonly adapter: string;
  /** How many attempts ran, the first included. */
  readonly attempts: number;
  /** Why the call was not run again although attempts were left, when that is the case. */
  readonly notRetried: string | undefined;

  constructor(adapter: string, attempts: number, cause: unknown, notRetried?: string) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const failed =
      `The transaction failed ${attempts === 1 ? 'once' : `${attempts} times`} with an error the database says is ` +
      `transient (${reason})`;
    super(
      'TRANSACTION_RETRIES_EXHAUSTED',
      notRetried === undefined
        ? `${failed}, and the call has no attempts left. Every attempt was rolled back and the entity restored, so ` +
            'nothing of the call was kept. Retry the call later, reduce contention on the rows it writes, or raise ' +
            'retries on the decorator.'
        : `${failed}, and was rolled back: nothing of the call was kept in the database. ${notRetried}. Only its ` +
            'version and timestamp were restored: reload the entity and call again, or pass plain data ' +
            '(objects, arrays, dates, maps, sets, classes without private fields).',
      { cause },
    );
    this.adapter = adapter;
    this.attempts = attempts;
    this.notRetried = notRetried;
  }
}

/**
 * `revert` cannot put an entity back: the service has no decorated `update` (or `save` for a
 * deleted entity), no history reader was found, or the version to revert to is not in history.
 * Nothing was written.
 *
 * ```ts
 * catch (e) { if (e instanceof RevertError) respond(404, e.message); }
 * ```
 */
export class RevertError extends EventHistoryError {
  readonly entityType: string | undefined;
  readonly entityId: string | undefined;
  readonly toVersion: number;

  constructor(message: string, entityType: string | undefined, entityId: string | undefined, toVersion: number) {
    super('REVERT_FAILED', message);
    this.entityType = entityType;
    this.entityId = entityId;
    this.toVersion = toVersion;
  }
}

brand(EventHistoryError, 'EventHistoryError');
brand(DecoratorError, 'DecoratorError');
brand(MissingSessionError, 'MissingSessionError');
brand(UnsupportedSessionError, 'UnsupportedSessionError');
brand(SessionEndedError, 'SessionEndedError');
brand(InvalidEntityError, 'InvalidEntityError');
brand(VersionConflictError, 'VersionConflictError');
brand(HistoryWriteError, 'HistoryWriteError');
brand(TransactionStateError, 'TransactionStateError');
brand(ConnectionLostError, 'ConnectionLostError');
brand(RetryExhaustedError, 'RetryExhaustedError');
brand(TransactionRetriesExhaustedError, 'TransactionRetriesExhaustedError');
brand(RevertError, 'RevertError');
