import { ambient, type CallInfo, runWithAmbient, type TransactionFrame } from '../context.js';
import {
  ConnectionLostError,
  DecoratorError,
  EventHistoryError,
  HistoryWriteError,
  InvalidEntityError,
  MissingSessionError,
  TransactionRetriesExhaustedError,
  TransactionStateError,
  VersionConflictError,
} from '../errors.js';
import type { HistoryEntry, HistoryWriter } from '../history/entry.js';
import { takeSnapshot } from '../history/snapshot.js';
import type { TransactionAdapter } from '../transactions/adapter.js';
import { isConnectionLost } from '../transactions/connection-lost.js';
import { writeLast } from '../transactions/final-statement.js';
import { findAdapter } from '../transactions/registry.js';
import { providedSession } from '../transactions/session-provider.js';
import { entityTypeName } from './entity-kind.js';
import { captureEntity, type EntityState, restoreEntity } from './entity-state.js';
import { committed, entryWritten, mergeHooks, parkHooks } from './hooks.js';
import type { CallPlan } from './plan.js';
import { planFor } from './plan.js';
import { finishEntry, isUnchanged, readPrevious } from './previous.js';
import type { MethodSpec } from './spec.js';
import { type Stamp, stampEntity } from './stamp.js';
import { anyCause, backoff, childFrame, endFrame, inTurn, newFrame, propagation, undo } from './transaction.js';
import { runUnitOfWork, unitOfWorkFor } from './unit-of-work.js';
import { resolveWriter } from './writer.js';

type Entity = Record<string, unknown>;

/** One call of a wrapped method, located and validated. */
interface Call {
  readonly plan: CallPlan;
  readonly spec: MethodSpec;
  readonly service: object;
  readonly args: unknown[];
  readonly entity: Entity;
  readonly entityType: string;
  readonly session: unknown;
  readonly writer: HistoryWriter | undefined;
}

/**
 * The pipeline every wrapped method runs: locate and validate, stamp, run the method and the
 * history write in one transaction, restore the entity on failure.
 */
export function invoke(spec: MethodSpec, service: object, args: unknown[]): Promise<unknown> {
  // Not async: one promise fewer per call. Synchronous failures still reach the caller as rejections.
  try {
    const plan = planFor(spec, service);
    const unitSource = unitOfWorkFor(plan, args, ambient()?.session ?? providedSession());
    if (unitSource !== undefined) {
      const unitWriter = plan.source === undefined ? undefined : resolveWriter(plan.source, service, plan.method);
      return runUnitOfWork(spec, plan, service, args, unitWriter, unitSource);
    }
    const candidate = args[plan.entityIndex];
    const entityType = readingEntity(plan, undefined, () => entityTypeOf(plan, candidate));
    const entity = readingEntity(plan, entityType, () => {
      validateEntity(plan, candidate, entityType);
      return candidate;
    });
    const session = sessionOf(plan, args);
    const writer = plan.source === undefined ? undefined : resolveWriter(plan.source, service, plan.method);
    const call: Call = { plan, spec, service, args, entity, entityType, session, writer };
    const route = propagation(session);
    switch (route.kind) {
      case 'none':
        if (plan.requireSession && writer?.transactional !== false) throw new MissingSessionError(plan.method);
        // Without a transaction nothing can be rolled back: an entity whose snapshot cannot be
        // taken must fail before the method writes it.
        if (writer !== undefined) snapshotOf(plan, entity, entityType, entityType);
        return attempt(call, undefined, undefined);
      case 'nested':
        return nested(call, route.frame);
      case 'join':
        return joined(call, route.frame);
      case 'own':
        return own(call, route.adapter, 0, undefined);
    }
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * This call owns the transaction: begin, commit or roll back, and retry transient failures.
 * Not async (a `.then` for the failure path only): one promise and await fewer per call, which
 * matter on Node 20, where AsyncLocalStorage makes every promise pay for its hooks.
 */
function own(
  call: Call,
  adapter: TransactionAdapter<unknown>,
  attemptNo: number,
  before: EntityState | undefined,
): Promise<unknown> {
  let frame: TransactionFrame | undefined;
  // The entity as the caller passed it, recorded once the call holds the session (not before: a
  // call queued behind another on the same entity must start from what that one left).
  let captured = before;
  const progress: Progress = { workDone: false };
  let running: Promise<unknown>;
  const heldBefore = ambient()?.held?.length ?? 0;
  try {
    // Not an async callback: attempt() marks the work done itself, one promise fewer per call.
    running = adapter.run(call.session, (opened?: unknown) => {
      const inside = opened === undefined || opened === call.session ? call : withSession(call, opened);
      captured ??= capturedForRetry(call, adapter);
      frame = newFrame(inside.session, adapter);
      if (captured !== undefined) frame.captures = [];
      // The holds the adapter took for this transaction end with the unit (see TransactionFrame.holds).
      const held = ambient()?.held;
      if (held !== undefined && held.length > heldBefore) frame.holds = held.slice(heldBefore);
      return attempt(inside, frame, adapter, progress);
    });
  } catch (error) {
    // An adapter whose run() throws instead of rejecting.
    return ownFailed(error, call, adapter, attemptNo, captured, frame, progress);
  }
  return running.then(
    (result) => committed(frame, result), // after-commit hooks: the transaction committed
    (error: unknown) => ownFailed(error, call, adapter, attemptNo, captured, frame, progress),
  );
}

/** A failed attempt of an owned call: undo it, then retry a transient failure or report the error. */
async function ownFailed(
  error: unknown,
  call: Call,
  adapter: TransactionAdapter<unknown>,
  attemptNo: number,
  before: EntityState | undefined,
  frame: TransactionFrame | undefined,
  { workDone, written }: Progress,
): Promise<unknown> {
  if (frame) undo(frame);
  const transient = adapter.isTransient;
  if (transient !== undefined && anyCause(error, (e) => transient.call(adapter, e))) {
    if (frame === undefined && attemptNo < call.plan.retries) {
      // The transaction failed before the method ran (at BEGIN): nothing to put back.
      await backoff(attemptNo);
      return own(call, adapter, attemptNo + 1, before);
    }
    // Run again only on the entities exactly as they were passed, the root call's and every
    // nested call's: otherwise a method that does `wallet.balance += amount` applies it twice.
    const blocked = before === undefined ? undefined : unrestorable(before, frame);
    if (attemptNo < call.plan.retries && before !== undefined && blocked === undefined) {
      await backoff(attemptNo);
      const refused = putBack(before, frame);
      if (refused === undefined) return own(call, adapter, attemptNo + 1, before);
      throw new TransactionRetriesExhaustedError(adapter.name, attemptNo + 1, error, notRetried(call, refused));
    }
    if (blocked !== undefined) {
      throw new TransactionRetriesExhaustedError(adapter.name, attemptNo + 1, error, notRetried(call, blocked));
    }
    // Nothing of the call was kept: neither are the methods' changes of the entities, when they were captured.
    const refused = before === undefined ? undefined : putBack(before, frame);
    throw new TransactionRetriesExhaustedError(
      adapter.name,
      attemptNo + 1,
      error,
      refused === undefined ? undefined : notRetried(call, refused),
    );
  }
  const classified = classify(error, call, undefined, adapter);
  if (workDone && classified === error && !(error instanceof EventHistoryError)) {
    throw commitFailed(adapter, error);
  }
  if (workDone && classified instanceof ConnectionLostError && classified.outcome === 'rolled-back') {
    // The work was done, so the connection broke on the way to or during COMMIT: the outcome is unknown.
    throw new ConnectionLostError(
      classified.adapter,
      classified.cause,
      written === undefined || frame === undefined ? true : { ...written, txId: frame.txId },
    );
  }
  throw classified;
}

/** How far an owned call's attempt got: its work done (only COMMIT left), and the history key it wrote. */
interface Progress {
  workDone: boolean;
  written?: { readonly entityType: string; readonly entityId: string; readonly version: number };
}

/**
 * The entity as the caller passed it, when a transient failure may make the call run again: each
 * attempt must start from it, or a method that changes the entity applies its change twice.
 */
function capturedForRetry(call: Call, adapter: TransactionAdapter<unknown>): EntityState | undefined {
  if (call.plan.retries < 1 || adapter.isTransient === undefined) return undefined;
  return captureSafely(call.entity);
}

function captureSafely(entity: object): EntityState {
  try {
    return captureEntity(entity);
  } catch (error) {
    // A proxy whose traps throw, say: the call may still succeed at the first attempt.
    return { objects: new Map(), unrestorable: `reading it failed (${(error as Error)?.message ?? String(error)})` };
  }
}

/** Why the root call's entity or a nested call's cannot be put back, if one cannot. */
function unrestorable(root: EntityState, frame: TransactionFrame | undefined): string | undefined {
  if (root.unrestorable !== undefined) return root.unrestorable;
  for (const { entityType, state } of frame?.captures ?? []) {
    if (state.unrestorable !== undefined) return `the ${entityType} of a nested call: ${state.unrestorable}`;
  }
  return undefined;
}

/**
 * Puts every entity of the failed attempt back: the nested calls' newest first, the root call's
 * last, so that an object several of them reach ends as the root call found it.
 */
function putBack(root: EntityState, frame: TransactionFrame | undefined): string | undefined {
  const nested = frame?.captures ?? [];
  for (let i = nested.length - 1; i >= 0; i--) {
    const { entityType, state } = nested[i] as { entityType: string; state: EntityState };
    const refused = restoreEntity(state);
    if (refused !== undefined) return `the ${entityType} of a nested call: ${refused}`;
  }
  return restoreEntity(root);
}

/** Why a call that failed transiently was not run again, for TransactionRetriesExhaustedError. */
function notRetried(call: Call, why: string): string {
  return (
    `${call.plan.method} was not run again because its ${call.entityType} cannot be put back exactly as it was ` +
    `passed (${why}), and running the method on the changed entity could apply its change twice`
  );
}

/** Writes the history entry of a call whose method succeeded, and tells the committed-entry listeners. */
async function recordHistory(
  call: Call,
  writer: HistoryWriter,
  stamp: Stamp,
  info: CallInfo,
  frame: TransactionFrame | undefined,
  read: { readonly entry: HistoryEntry | undefined } | undefined,
): Promise<void> {
  const { plan } = call;
  const written = historyEntry(call, stamp, info, frame);
  const prior =
    plan.chain && read === undefined
      ? await readPrevious(plan, writer, written.entityType, written.entityId, call.session)
      : read?.entry;
  const entry = finishEntry(plan, written, prior);
  const stored = (plan.map ? plan.map(entry) : entry) as HistoryEntry;
  try {
    await saveHistory(writer, stored, entry, stamp, call.session, frame);
  } catch (error) {
    throw historyWriteFailure(error, entry, stamp, frame);
  }
  const notified = entryWritten(frame, stored); // committed-entry listeners, after the commit
  if (notified !== undefined) await notified;
}

/**
 * A call that joins the transaction its caller began: in a savepoint where the adapter has
 * `join`, so that a failure leaves nothing of the call's writes in the caller's transaction.
 */
function joined(call: Call, frame: TransactionFrame): Promise<unknown> {
  const { adapter } = frame;
  const work = (): Promise<unknown> => attempt(call, frame, adapter);
  let running: Promise<unknown>;
  try {
    running = adapter.join ? adapter.join(frame.session, work) : work();
  } catch (error) {
    running = Promise.reject(error);
  }
  return running.then(
    (result) => {
      parkHooks(frame); // the caller commits: hooks wait for runCommittedHooks(session)
      return result;
    },
    (error: unknown) => {
      undo(frame);
      frame.closed = true;
      throw classify(error, call, undefined, adapter);
    },
  );
}

/**
 * A decorated call inside another's unit of work on the same session: in a savepoint of its own
 * (where the adapter has `join`), after the unit's earlier nested calls have settled (one
 * connection runs one statement at a time, and interleaved savepoints would undo each other's
 * work), and waited for by the unit before it ends.
 */
function nested(call: Call, parent: TransactionFrame): Promise<unknown> {
  const { adapter } = parent;
  const frame = childFrame(parent);
  const work = (): Promise<unknown> => attempt(call, frame, adapter);
  const waiting = parent.children === undefined ? undefined : warnIfStillWaiting(call);
  const run = (): Promise<unknown> => {
    if (waiting !== undefined) clearTimeout(waiting);
    // A unit that may run again records this call's entity too, as the call gets its turn.
    parent.captures?.push({ entityType: call.entityType, state: captureSafely(call.entity) });
    return adapter.join ? adapter.join(parent.session, work) : work();
  };
  return inTurn(parent, run).then(
    (result) => {
      // Undone with the parent's unit if that rolls back.
      parent.onRollback.push(...frame.onRollback);
      mergeHooks(parent, frame);
      return result;
    },
    (error: unknown) => {
      undo(frame);
      frame.closed = true;
      throw classify(error, call, undefined, adapter);
    },
  );
}

/** How long a nested call may wait for its turn before the process is warned that it may never get it. */
export const NESTED_WAIT_WARNING_MS = 10_000;

/**
 * Nested calls on one session run one after another, so two whose methods wait for each other (the
 * first for something only the second does) never finish. That cannot be told from a slow call, so
 * it is not an error: a process warning (`EVENT_HISTORY_NESTED_WAIT`) names the waiting call.
 */
function warnIfStillWaiting(call: Call): ReturnType<typeof setTimeout> {
  const timer = setTimeout(() => {
    process.emitWarning(
      `${call.plan.method} has waited ${NESTED_WAIT_WARNING_MS / 1000} s for its turn behind an earlier nested call ` +
        'on the same session. Nested calls on one session run one after another: if the earlier one waits for ' +
        'something only this one does, neither will finish. Await each nested call, or run them on separate sessions.',
      { code: 'EVENT_HISTORY_NESTED_WAIT' },
    );
  }, NESTED_WAIT_WARNING_MS);
  timer.unref?.();
  return timer;
}

/** The database refused the COMMIT of a call whose writes all succeeded (a deferred constraint, say). */
function commitFailed(adapter: TransactionAdapter<unknown>, cause: unknown): TransactionStateError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new TransactionStateError(
    adapter.name,
    'COMMIT_FAILED',
    `The database refused to commit the transaction (${reason}), so it was rolled back and nothing of the call was ` +
      'kept; the entity was restored. See cause for the reason (a deferred constraint, a trigger), fix it and retry the call.',
    { cause },
  );
}

/**
 * The call with the transaction an adapter opened (an ORM's transaction object) in place of the
 * root session it was given, in the session argument too, so the method writes inside it.
 */
function withSession(call: Call, opened: unknown): Call {
  const args = [...call.args];
  const index = call.plan.sessionIndex;
  const arg = args[index];
  if (arg === call.session) args[index] = opened;
  else if (isPlainObject(arg) && arg.session === call.session) args[index] = { ...arg, session: opened };
  return { ...call, args, session: opened };
}

/** One attempt: stamp, run the method, check for a conflict, write history. Restores on failure. */
async function attempt(
  call: Call,
  frame: TransactionFrame | undefined,
  adapter: TransactionAdapter<unknown> | undefined,
  progress?: Progress,
): Promise<unknown> {
  const { plan, entity } = call;
  // onUnchanged: 'skip' decides before anything is stamped or written, so a skipped call leaves no trace.
  let previous: HistoryEntry | undefined;
  let previousRead = false;
  if (call.writer && plan.onUnchanged === 'skip' && plan.op === 'update') {
    try {
      previous = await readPrevious(plan, call.writer, call.entityType, idOf(plan, entity) ?? '', call.session);
    } catch (error) {
      if (frame !== undefined) void endFrame(frame);
      throw classify(error, call, undefined, adapter);
    }
    if (isUnchanged(plan, entity, previous)) {
      if (frame !== undefined) void endFrame(frame);
      if (progress) progress.workDone = true;
      return undefined;
    }
    previousRead = true;
  }
  const stamp = stampEntity(plan, entity, call.entityType);
  try {
    const info: CallInfo = {
      service: call.service,
      method: call.spec.name,
      op: plan.op,
      entity,
      entityType: call.entityType,
      expectedVersion: stamp.expectedVersion,
      version: stamp.version,
      session: call.session,
      // Read when asked: an adapter may learn the id only with the reply to the first statement.
      get txId() {
        return frame?.txId;
      },
      args: call.args,
    };
    const scope =
      call.session === undefined ? { call: info, tx: frame } : { call: info, tx: frame, session: call.session };
    const result = await runWithAmbient(scope, () => runOriginal(call));
    if ((plan.op !== 'create' || !plan.checksDefaultConflict) && plan.conflict(result, info)) {
      throw new VersionConflictError(call.entityType, idOf(plan, entity) ?? '(unknown id)', stamp.expectedVersion, {
        detail: 'the guarded write matched no row or document',
      });
    }
    if (call.writer) {
      const { writer } = call;
      const record = (): Promise<void> =>
        recordHistory(call, writer, stamp, info, frame, previousRead ? { entry: previous } : undefined);
      // The unit's own statements take their turn after the nested calls the method started, and
      // before any it starts later: a nested call's savepoint must never enclose them, or its
      // rollback would take the unit's history entry with it.
      await (frame === undefined ? record() : inTurn(frame, record));
    }
    stamp.release();
    frame?.onRollback.push(stamp.restore);
    // Nested calls the method started and did not await finish inside this unit, not after it.
    const children = frame === undefined ? undefined : endFrame(frame);
    if (children !== undefined) await children;
    if (progress) {
      progress.workDone = true;
      if (call.writer) progress.written = writtenKey(call, stamp);
    }
    return result;
  } catch (error) {
    stamp.restore();
    const children = frame === undefined ? undefined : endFrame(frame);
    if (children !== undefined) await children;
    throw classify(error, call, stamp, adapter);
  }
}

/**
 * The writer writes the entry. In a transaction, inside a `writeLast` window: the store may hand
 * its statements to the adapter, which sends them with the COMMIT (or RELEASE SAVEPOINT) that
 * ends the call, and reports their failure through `historyWriteFailure` as if `save` had failed.
 */
function saveHistory(
  writer: HistoryWriter,
  stored: HistoryEntry,
  entry: HistoryEntry,
  stamp: Stamp,
  session: unknown,
  frame: TransactionFrame | undefined,
): unknown {
  if (frame === undefined) return writer.save(stored, session);
  return writeLast(
    session,
    (error) => historyWriteFailure(error, entry, stamp, frame),
    () => writer.save(stored, session),
  );
}

function runOriginal(call: Call): Promise<unknown> {
  const returned: unknown = call.spec.original.apply(call.service, call.args);
  if (returned === null || typeof (returned as PromiseLike<unknown> | undefined)?.then !== 'function') {
    throw new DecoratorError(
      `${call.plan.method} returned ${returned === null ? 'null' : typeof returned} instead of a Promise. ` +
        'Decorated methods must be async (or return a Promise) so their writes can run inside the transaction.',
    );
  }
  return Promise.resolve(returned);
}

function historyEntry(call: Call, stamp: Stamp, info: CallInfo, frame: TransactionFrame | undefined): HistoryEntry {
  const { plan, entity, entityType } = call;
  const entityId = idOf(plan, entity);
  if (entityId === undefined) {
    throw new InvalidEntityError(
      `${entityType} has no '${plan.idField}' (or '_id') after ${plan.method} ran, so its history cannot be keyed. ` +
        'Assign the id to the entity in the method (as ORMs and the MongoDB driver do), or set idField.',
      entityType,
    );
  }
  const version = stamp.version ?? entity[plan.versionField];
  if (!Number.isInteger(version)) {
    throw new InvalidEntityError(
      `${entityType} ${entityId} carries no integer '${plan.versionField}' after ${plan.method} ran. ` +
        'Add @Versioned() to the method so the library stamps one, or let your ORM maintain it (TypeORM @VersionColumn).',
      entityType,
    );
  }
  const snapshot = snapshotOf(plan, entity, `${entityType} ${entityId}`, entityType);
  const context = ambient()?.history;
  const extra = plan.metadata?.(info);
  const metadata = context?.metadata || extra ? { ...context?.metadata, ...extra } : undefined;
  const entry: HistoryEntry = {
    entityType,
    entityId,
    version: version as number,
    op: plan.op,
    timestamp: stamp.timestamp,
    snapshot,
  };
  if (context?.actor !== undefined) entry.actor = context.actor;
  if (context?.reason !== undefined) entry.reason = context.reason;
  if (metadata !== undefined) entry.metadata = metadata;
  if (frame !== undefined) entry.txId = frame.txId;
  return entry;
}

function snapshotOf(plan: CallPlan, entity: Entity, what: string, entityType: string): Record<string, unknown> {
  try {
    return takeSnapshot(entity, plan.ignore, plan.redact, plan.maxSnapshotBytes);
  } catch (error) {
    throw new InvalidEntityError(
      `${what} cannot be copied into a history snapshot: ${(error as Error).message}. ` +
        'Remove the field (or list it in ignore) so the entity is plain data.',
      entityType,
      { cause: error },
    );
  }
}

/** A writer's failure as the caller sees it: a key violation is a conflict, anything else a `HistoryWriteError`. */
function historyWriteFailure(
  error: unknown,
  entry: HistoryEntry,
  stamp: Stamp,
  frame: TransactionFrame | undefined,
): unknown {
  if (error instanceof EventHistoryError) return error;
  if (frame !== undefined && isConnectionLost(error)) return new ConnectionLostError(frame.adapter.name, error);
  if (frame?.adapter.isConflict?.(error)) {
    return new VersionConflictError(entry.entityType, entry.entityId, stamp.expectedVersion, {
      cause: error,
      detail: `history already holds version ${entry.version}`,
      duplicate: entry.op === 'create',
    });
  }
  return new HistoryWriteError(entry.entityType, entry.entityId, entry.version, error);
}

/** Maps a failure to the error the caller sees: the library's own as they are, driver conflicts as `VersionConflictError`. */
function classify(
  error: unknown,
  call: Call,
  stamp: Stamp | undefined,
  adapter: TransactionAdapter<unknown> | undefined,
): unknown {
  if (error instanceof EventHistoryError) return error;
  if (adapter !== undefined && isConnectionLost(error)) return new ConnectionLostError(adapter.name, error);
  if (!adapter?.isConflict?.(error)) return error;
  const id = idOf(call.plan, call.entity) ?? '(new)';
  const expected = stamp?.expectedVersion ?? expectedOf(call);
  return new VersionConflictError(call.entityType, id, expected, {
    cause: error,
    ...(call.plan.op === 'create' ? { duplicate: true } : { detail: 'the database reported a write conflict' }),
  });
}

/** The key of the history entry a finished attempt wrote, as `historyEntry` built it. */
function writtenKey(call: Call, stamp: Stamp): Progress['written'] {
  const entityId = idOf(call.plan, call.entity);
  const version = stamp.version ?? call.entity[call.plan.versionField];
  if (entityId === undefined || !Number.isInteger(version)) return undefined;
  return { entityType: call.entityType, entityId, version: version as number };
}

function expectedOf(call: Call): number | undefined {
  const version = call.entity[call.plan.versionField];
  return call.plan.op !== 'create' && Number.isInteger(version) ? (version as number) : undefined;
}

function sessionOf(plan: CallPlan, args: readonly unknown[]): unknown {
  const arg = args[plan.sessionIndex];
  const explicit = isPlainObject(arg) && ('session' in arg || !findAdapter(arg)) ? arg.session : arg;
  return explicit ?? ambient()?.session ?? providedSession();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function entityTypeOf(plan: CallPlan, entity: unknown): string {
  if (plan.entityType !== undefined) return plan.entityType;
  if (entity !== null && typeof entity === 'object') {
    const name = entityTypeName(entity);
    if (name !== undefined) return name;
  }
  if (plan.designEntityType !== undefined) return plan.designEntityType;
  return plan.serviceName.replace(/Service$/, '') || plan.serviceName;
}

/** Runs a read of the entity; a getter or proxy trap that throws makes it an `InvalidEntityError`. */
function readingEntity<T>(plan: CallPlan, entityType: string | undefined, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof EventHistoryError) throw error;
    throw new InvalidEntityError(
      `${plan.method} could not read its ${entityType ?? 'entity'}: ${(error as Error)?.message ?? String(error)}. ` +
        'Pass plain data whose fields can be read: no getters or proxies that throw.',
      entityType,
      { cause: error },
    );
  }
}

function validateEntity(plan: CallPlan, entity: unknown, entityType: string): asserts entity is Entity {
  const fail = (problem: string, fix: string, programmingError = false): never => {
    throw new InvalidEntityError(`${plan.method} ${problem}. ${fix}`, entityType, { programmingError });
  };
  if (entity === null || typeof entity !== 'object' || Array.isArray(entity)) {
    fail(
      `expects an entity object as argument ${plan.entityIndex}, got ${entity === null ? 'null' : Array.isArray(entity) ? 'an array' : typeof entity}`,
      'Pass the entity there, or set entityIndex / @EntityArg() to where it is.',
      true,
    );
  }
  if (Object.isFrozen(entity)) {
    fail(`got a frozen ${entityType}, which cannot be stamped`, 'Pass a mutable copy ({ ...entity }).');
  }
  // Every field the snapshot will copy is read now, before anything is written: a getter or proxy
  // trap that throws would otherwise fail the user's write or the snapshot midway.
  for (const key of Object.keys(entity as object)) void (entity as Entity)[key];
  if (plan.op === 'create') return;
  const record = entity as Entity;
  const version = record[plan.versionField];
  if (!Number.isInteger(version) || (version as number) < plan.initialVersion) {
    fail(
      `needs the ${entityType}'s current '${plan.versionField}' (an integer of at least ${plan.initialVersion}), got ${String(version)}`,
      'Load the entity (with its version) before you update or delete it.',
    );
  }
  if (idOf(plan, record) === undefined) {
    fail(
      `needs the ${entityType}'s '${plan.idField}' (or '_id')`,
      'Load the entity (with its id) before you update or delete it.',
    );
  }
}

export function idOf(plan: CallPlan, entity: Entity): string | undefined {
  const value = entity[plan.idField] ?? entity._id;
  switch (typeof value) {
    case 'string':
      return value === '' ? undefined : value;
    case 'number':
    case 'bigint':
      return String(value);
    case 'object': {
      if (value === null) return undefined;
      const hex = (value as { toHexString?: unknown }).toHexString;
      if (typeof hex === 'function') return String(hex.call(value));
      return value.toString === Object.prototype.toString ? undefined : String(value);
    }
    default:
      return undefined;
  }
}
