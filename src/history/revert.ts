import { withHistoryContext } from '../context.js';
import { RevertError } from '../errors.js';
import { entityTypeOf, idOf } from '../pipeline/invoke.js';
import { type CallPlan, planFor } from '../pipeline/plan.js';
import { specOf } from '../pipeline/spec.js';
import { continueVersion } from '../pipeline/stamp.js';
import { resolveWriter } from '../pipeline/writer.js';
import type { EntityTypes, HistoryEntry, HistoryReader } from './entry.js';
import { REDACTED } from './snapshot.js';

/**
 * Options of {@link revert}.
 *
 * ```ts
 * await revert(orders, order, 2, session, { reader: upcastReader(store, upcasters) });
 * ```
 */
export interface RevertOptions<M extends EntityTypes = Record<string, unknown>> {
  /**
   * Where to read the version from. Default: the service's `@HistoryTracked` writer, when it is
   * also a reader (every built-in store is). Pass one when the writer is your own service, or to
   * read through `upcastReader` so an old snapshot comes back in today's shape.
   */
  readonly reader?: HistoryReader<M>;
  /** The decorated update method. Default `'update'`. */
  readonly updateMethod?: string;
  /** The decorated create method used to restore a deleted entity. Default `'save'`. */
  readonly saveMethod?: string;
  /** The reason recorded on the new entry. Default `` `revert to v${toVersion}` ``. */
  readonly reason?: string;
}

type Method = (this: object, ...args: unknown[]) => Promise<unknown>;

/**
 * Puts the snapshot of `toVersion` back: the fields of `entity` are set from it in place, and
 * the entity goes through the service's own decorated `update`, in its transaction, as a new
 * version recorded with the reason `revert to v<N>` (history is never rewritten). When the
 * entity's latest entry is a deletion, it is restored through the decorated `save` instead, as the
 * version after its tombstone (revert to the tombstone's version to restore it as it was deleted).
 *
 * Fields the snapshot does not hold are kept as they are on `entity`: the id, version and
 * timestamp (stamped by the update), `ignore`d paths, and `redact`ed paths (history holds only
 * the mask; a redacted path `entity` does not carry is left out). Other fields of `entity` that
 * the snapshot lacks are removed. On failure (a `VersionConflictError` when `entity` is not the
 * latest version, say) `entity` is put back as it was.
 *
 * ```ts
 * await revert(orders, order, 2, session);            // order is at v5: records v6 = v2's content
 * await revert(orders, deletedOrder, 3, session);     // v3 was the delete: restores it as v4
 * ```
 */
export async function revert<T extends object, M extends EntityTypes = Record<string, unknown>>(
  service: object,
  entity: T,
  toVersion: number,
  session?: unknown,
  options: RevertOptions<M> = {},
): Promise<T> {
  const updateName = options.updateMethod ?? 'update';
  const update = decorated(service, updateName, toVersion);
  const plan = planFor(update.spec, service);
  const record = entity as Record<string, unknown>;
  const entityType = entityTypeOf(plan, entity);
  const entityId = idOf(plan, record);
  const fail = (message: string): never => {
    throw new RevertError(message, entityType, entityId, toVersion);
  };
  if (entityId === undefined) {
    fail(`revert needs the ${entityType}'s '${plan.idField}' (or '_id'). Pass the entity (or at least its id).`);
  }
  const id = entityId as string;
  const reader =
    readerFor(service, plan, options.reader as HistoryReader | undefined) ??
    fail(
      `${plan.method} writes history through a writer that cannot be read. Pass { reader } to revert (a built-in store).`,
    );
  const [target, latest] = await Promise.all([reader.at(entityType, id, toVersion), reader.latest(entityType, id)]);
  if (target === undefined || latest === undefined) {
    return fail(
      `${entityType} ${id} has no version ${toVersion} in history; list its versions with the store's list().`,
    );
  }
  const context = { reason: options.reason ?? `revert to v${toVersion}` };
  const before = { ...record };
  const args = (target: object): unknown[] => (session === undefined ? [target] : [target, session]);
  try {
    applySnapshot(plan, record, target);
    if (latest.op !== 'delete') {
      await withHistoryContext(context, () => update.method.apply(service, args(entity)));
      return entity;
    }
    const save = decorated(service, options.saveMethod ?? 'save', toVersion);
    const next = latest.version + 1;
    delete record[plan.versionField];
    delete record[plan.timestampField];
    // A restored entity continues its history: @Versioned stamps the version after the tombstone.
    if (planFor(save.spec, service).versioned) continueVersion(entity, next);
    else record[plan.versionField] = next;
    try {
      await withHistoryContext(context, () => save.method.apply(service, args(entity)));
    } finally {
      continueVersion(entity, undefined);
    }
    return entity;
  } catch (error) {
    for (const key of Object.keys(record)) delete record[key];
    Object.assign(record, before);
    throw error;
  }
}

function decorated(
  service: object,
  name: string,
  toVersion: number,
): { method: Method; spec: NonNullable<ReturnType<typeof specOf>> } {
  const method = (service as Record<string, unknown>)[name];
  const spec = specOf(method);
  if (spec === undefined) {
    throw new RevertError(
      `revert goes through ${service.constructor.name}.${name}, which is ${typeof method === 'function' ? 'not decorated' : 'missing'}. ` +
        'Decorate it with @Versioned / @HistoryTracked, or name the decorated method in { updateMethod, saveMethod }.',
      undefined,
      undefined,
      toVersion,
    );
  }
  return { method: method as Method, spec };
}

function readerFor(service: object, plan: CallPlan, given: HistoryReader | undefined): HistoryReader | undefined {
  if (given !== undefined) return given;
  if (plan.source === undefined) return undefined;
  const writer = resolveWriter(plan.source, service, plan.method) as Partial<HistoryReader>;
  return typeof writer.at === 'function' && typeof writer.latest === 'function' ? (writer as HistoryReader) : undefined;
}

/** Sets the entity's fields from the entry's snapshot, keeping what the snapshot does not hold. */
function applySnapshot(plan: CallPlan, entity: Record<string, unknown>, target: HistoryEntry): void {
  const snapshot = (target.snapshot ?? {}) as Record<string, unknown>;
  const kept = new Set([plan.versionField, plan.timestampField, plan.idField, '_id']);
  const preserved = [...plan.ignore, ...plan.redact].map((path) => ({
    path: path.split('.'),
    value: getPath(entity, path.split('.')),
  }));
  for (const path of plan.ignore) if (!path.includes('.')) kept.add(path);
  for (const key of Object.keys(entity)) if (!kept.has(key) && !Object.hasOwn(snapshot, key)) delete entity[key];
  for (const [key, value] of Object.entries(snapshot)) {
    if (key === plan.versionField || key === plan.timestampField || (kept.has(key) && plan.ignore.includes(key)))
      continue;
    entity[key] = structuredClone(value);
  }
  for (const { path, value } of preserved) {
    const redacted = getPath(entity, path) === REDACTED;
    if (value !== undefined) setPath(entity, path, value);
    else if (redacted) setPath(entity, path, undefined);
  }
}

function getPath(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let holder = target;
  for (const part of path.slice(0, -1)) {
    const inner = holder[part];
    if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) return;
    holder = inner as Record<string, unknown>;
  }
  const last = path.at(-1) as string;
  if (value === undefined) delete holder[last];
  else holder[last] = value;
}
