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
  | TransactionStateErrorCode;

/**
 * What went wrong with a transaction; see {@link TransactionStateError}.
 *
 * ```ts
 * if (error instanceof TransactionStateError && error.code === 'TRANSACTION_STATUS_UNKNOWN') upgradePg();
 * ```
 */
export type TransactionStateErrorCode = 'TRANSACTION_ABORTED' | 'TRANSACTION_CLOSED' | 'TRANSACTION_STATUS_UNKNOWN';

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
  }
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

  constructor(sessionType: string, known: readonly string[]) {
    super(
      'UNSUPPORTED_SESSION',
      `No transaction adapter recognises a session of type ${sessionType} (adapters tried: ${known.join(', ') || 'none'}). ` +
        'Pass the driver session itself (a MongoDB ClientSession, a pg client, a mysql connection, a better-sqlite3 Database), ' +
        'or register an adapter for this type with registerTransactionAdapter({ name, matches, isActive, run }).',
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

  constructor(message: string, entityType?: string, options?: { cause?: unknown }) {
    super('INVALID_ENTITY', message, options);
    this.entityType = entityType;
  }
}

/**
 * Another writer changed the entity first: the guarded write matched nothing, or the history
 * already holds this version. Re-read the entity and apply the change again.
 *
 * ```ts
 * catch (e) { if (e instanceof VersionConflictError) order = await reload(e.entityId); }
 * ```
 */
export class VersionConflictError extends EventHistoryError {
  readonly entityType: string;
  readonly entityId: string;
  readonly expectedVersion: number | undefined;

  constructor(
    entityType: string,
    entityId: string,
    expectedVersion: number | undefined,
    options?: { cause?: unknown; detail?: string },
  ) {
    const expected = expectedVersion === undefined ? '' : ` at version ${expectedVersion}`;
    super(
      'VERSION_CONFLICT',
      `${entityType} ${entityId}${expected} was changed by another writer${options?.detail ? ` (${options.detail})` : ''}. ` +
        'Nothing of this call was kept: reload the entity and apply the change again.',
      options,
    );
    this.entityType = entityType;
    this.entityId = entityId;
    this.expectedVersion = expectedVersion;
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
 * transaction (`TRANSACTION_STATUS_UNKNOWN`: an old or native pg client). Nothing of the call was kept.
 *
 * ```ts
 * catch (e) { if (e instanceof TransactionStateError && e.code === 'TRANSACTION_ABORTED') retryLater(); }
 * ```
 */
export class TransactionStateError extends EventHistoryError {
  declare readonly code: TransactionStateErrorCode;
  /** The name of the transaction adapter that noticed it. */
  readonly adapter: string;

  constructor(adapter: string, code: TransactionStateErrorCode, message: string) {
    super(code, message);
    this.adapter = adapter;
  }
}
