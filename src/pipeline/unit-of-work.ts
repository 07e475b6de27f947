import { ambient, runWithAmbient, type TransactionFrame } from '../context.js';
import {
  ConnectionLostError,
  DecoratorError,
  EventHistoryError,
  HistoryWriteError,
  InvalidEntityError,
  TransactionRetriesExhaustedError,
  VersionConflictError,
} from '../errors.js';
import type { HistoryEntry, HistoryWriter } from '../history/entry.js';
import { takeSnapshot } from '../history/snapshot.js';
import type { TransactionAdapter } from '../transactions/adapter.js';
import { isConnectionLost } from '../transactions/connection-lost.js';
import { findAdapter } from '../transactions/registry.js';
import {
  type TrackedSettings,
  type TrackedWrite,
  trackedLookup,
  type UnitOfWork,
  type UnitOfWorkSource,
  unitOfWorkSource,
} from '../unit-of-work/contract.js';
import { committed, entryWritten } from './hooks.js';
import type { CallPlan } from './plan.js';
import type { MethodSpec } from './spec.js';
import { anyCause, backoff, newFrame, undo } from './transaction.js';

/** A tracked write with its snapshots taken when it was reported (the entity may change later in the call). */
interface Recorded {
  readonly write: TrackedWrite;
  readonly settings: TrackedSettings;
  readonly snapshot: Record<string, unknown>;
  readonly baseline: Record<string, unknown> | undefined;
}

const lookups = new WeakMap<UnitOfWorkSource, (target: unknown) => TrackedSettings | undefined>();

function lookupOf(source: UnitOfWorkSource): (target: unknown) => TrackedSettings | undefined {
  let lookup = lookups.get(source);
  if (lookup === undefined) {
    lookup = trackedLookup(source.track);
    lookups.set(source, lookup);
  }
  return lookup;
}

/**
 * A decorated call given no session (`update(slug, dto)`): one unit of work on the registered
 * source. The source opens the transaction and reports every write of a tracked entity the ORM
 * makes during the method; each becomes a history entry, written through the transaction before
 * it commits. A unit started inside another unit's call is part of that unit.
 */
export function runUnitOfWork(
  spec: MethodSpec,
  plan: CallPlan,
  service: object,
  args: unknown[],
  writer: HistoryWriter | undefined,
  source: UnitOfWorkSource,
): Promise<unknown> {
  const outer = ambient()?.unit;
  if (outer !== undefined && outer.source === source) return runOriginal(spec, plan, service, args);
  return attemptUnit(spec, plan, service, args, writer, source, 0);
}

async function attemptUnit(
  spec: MethodSpec,
  plan: CallPlan,
  service: object,
  args: unknown[],
  writer: HistoryWriter | undefined,
  source: UnitOfWorkSource,
  attemptNo: number,
): Promise<unknown> {
  const recorded: Recorded[] = [];
  const lookup = lookupOf(source);
  let open = true;
  const unit: UnitOfWork = Object.freeze({
    source,
    versionField: plan.versionField,
    timestampField: plan.timestampField,
    initialVersion: plan.initialVersion,
    timestamp: plan.clock(),
    tracked: lookup,
    record(write: TrackedWrite): void {
      if (!open) return;
      const rules = lookup(write.target) ?? { entityType: write.entityType, ignore: [], redact: [] };
      recorded.push({
        write,
        settings: rules,
        snapshot: snapshotOf(plan, rules, write.state, write),
        baseline: write.baseline && snapshotOf(plan, rules, write.baseline.state, write),
      });
    },
  });
  let frame: TransactionFrame | undefined;
  let adapter: TransactionAdapter<unknown> | undefined;
  try {
    const result = await source.run(unit, async (session) => {
      adapter = findAdapter(session);
      frame = adapter === undefined ? undefined : newFrame(session, adapter);
      const scope = frame === undefined ? { session, unit } : { session, unit, tx: frame };
      const value = await runWithAmbient(scope, () => runOriginal(spec, plan, service, args));
      open = false;
      if (writer !== undefined) await writeEntries(plan, unit, writer, recorded, session, frame, adapter);
      if (frame !== undefined) frame.closed = true;
      return value;
    });
    return await committed(frame, result);
  } catch (error) {
    open = false;
    if (frame !== undefined) undo(frame);
    const transient = adapter?.isTransient;
    if (transient !== undefined && anyCause(error, (e) => transient.call(adapter, e))) {
      if (attemptNo < plan.retries) {
        await backoff(attemptNo);
        return attemptUnit(spec, plan, service, args, writer, source, attemptNo + 1);
      }
      throw new TransactionRetriesExhaustedError(adapter?.name ?? source.name, attemptNo + 1, error);
    }
    throw classify(error, adapter, recorded);
  }
}

async function writeEntries(
  plan: CallPlan,
  unit: UnitOfWork,
  writer: HistoryWriter,
  recorded: readonly Recorded[],
  session: unknown,
  frame: TransactionFrame | undefined,
  adapter: TransactionAdapter<unknown> | undefined,
): Promise<void> {
  const context = ambient()?.history;
  for (const { write, snapshot, baseline } of recorded) {
    const entries: HistoryEntry[] = [];
    if (write.baseline !== undefined && baseline !== undefined && !(await hasEntry(writer, write, session))) {
      entries.push({
        entityType: write.entityType,
        entityId: write.entityId,
        version: write.baseline.version,
        op: 'create',
        timestamp: unit.timestamp,
        snapshot: baseline,
        metadata: { baseline: true },
      });
    }
    const entry: HistoryEntry = {
      entityType: write.entityType,
      entityId: write.entityId,
      version: write.version,
      op: write.op,
      timestamp: unit.timestamp,
      snapshot,
    };
    entries.push(entry);
    for (const item of entries) {
      if (context?.actor !== undefined) item.actor = context.actor;
      if (context?.reason !== undefined) item.reason = context.reason;
      if (context?.metadata !== undefined) item.metadata = { ...context.metadata, ...item.metadata };
      if (frame !== undefined) item.txId = frame.txId;
      const stored = (plan.map ? plan.map(item) : item) as HistoryEntry;
      try {
        await writer.save(stored, session);
      } catch (error) {
        throw historyWriteFailure(error, item, adapter);
      }
      const notified = entryWritten(frame, stored);
      if (notified !== undefined) await notified;
    }
  }
}

/** A baseline is written once: the `event-history baseline` command, or an earlier call, may have written it. */
async function hasEntry(writer: HistoryWriter, write: TrackedWrite, session: unknown): Promise<boolean> {
  const at = (writer as { at?: unknown }).at;
  if (typeof at !== 'function' || write.baseline === undefined) return false;
  const found = await (at as (t: string, id: string, v: number, o?: unknown) => Promise<unknown>).call(
    writer,
    write.entityType,
    write.entityId,
    write.baseline.version,
    { session },
  );
  return found !== undefined;
}

function snapshotOf(
  plan: CallPlan,
  settings: TrackedSettings,
  state: Record<string, unknown>,
  write: TrackedWrite,
): Record<string, unknown> {
  try {
    return takeSnapshot(
      state,
      [...plan.ignore, ...settings.ignore],
      [...plan.redact, ...settings.redact],
      plan.maxSnapshotBytes,
    );
  } catch (error) {
    throw new InvalidEntityError(
      `${write.entityType} ${write.entityId} cannot be copied into a history snapshot: ${(error as Error).message}. ` +
        'List the field in ignore, or keep the column plain data.',
      write.entityType,
      { cause: error },
    );
  }
}

function historyWriteFailure(
  error: unknown,
  entry: HistoryEntry,
  adapter: TransactionAdapter<unknown> | undefined,
): unknown {
  if (error instanceof EventHistoryError) return error;
  if (adapter !== undefined && isConnectionLost(error)) return new ConnectionLostError(adapter.name, error);
  if (adapter?.isConflict?.(error)) {
    return new VersionConflictError(entry.entityType, entry.entityId, entry.version - 1, {
      cause: error,
      detail: `history already holds version ${entry.version}`,
    });
  }
  return new HistoryWriteError(entry.entityType, entry.entityId, entry.version, error);
}

/** The library's errors as they are; a driver's write conflict on a tracked write as `VersionConflictError`. */
function classify(error: unknown, adapter: TransactionAdapter<unknown> | undefined, recorded: Recorded[]): unknown {
  if (error instanceof EventHistoryError) return error;
  if (adapter !== undefined && isConnectionLost(error)) return new ConnectionLostError(adapter.name, error);
  if (!adapter?.isConflict?.(error)) return error;
  const last = recorded.at(-1)?.write;
  return new VersionConflictError(last?.entityType ?? 'entity', last?.entityId ?? '(unknown)', undefined, {
    cause: error,
    detail: 'the database reported a write conflict',
  });
}

function runOriginal(spec: MethodSpec, plan: CallPlan, service: object, args: unknown[]): Promise<unknown> {
  const returned: unknown = spec.original.apply(service, args);
  if (returned === null || typeof (returned as PromiseLike<unknown> | undefined)?.then !== 'function') {
    throw new DecoratorError(
      `${plan.method} returned ${returned === null ? 'null' : typeof returned} instead of a Promise. ` +
        'Decorated methods must be async (or return a Promise) so their writes can run inside the transaction.',
    );
  }
  return Promise.resolve(returned);
}

/**
 * The source a call runs on as a unit of work, or `undefined` for the call-with-a-session path: a
 * source is registered (or the call runs inside another unit), and the call has no session of its
 * own (the argument at `sessionIndex` is no session, and no ambient or provided session applies).
 */
export function unitOfWorkFor(
  plan: CallPlan,
  args: readonly unknown[],
  ambientSession: unknown,
): UnitOfWorkSource | undefined {
  const inside = ambient()?.unit;
  const source = inside?.source ?? unitOfWorkSource();
  if (source === undefined) return undefined;
  const arg = args[plan.sessionIndex];
  if (arg !== undefined && arg !== null && findAdapter(arg) !== undefined) return undefined;
  if (isSessionOptions(arg)) return undefined;
  if (inside === undefined && ambientSession !== undefined) return undefined;
  return source;
}

function isSessionOptions(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const session = (value as { session?: unknown }).session;
  return session !== undefined && session !== null && findAdapter(session) !== undefined;
}
