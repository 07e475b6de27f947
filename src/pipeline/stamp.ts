import { InvalidEntityError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { CallPlan } from './plan.js';

/** What a field held before the call, so a failed call can put it back exactly. */
interface FieldState {
  readonly field: string;
  readonly present: boolean;
  readonly value: unknown;
}

export interface Stamp {
  readonly version: number | undefined;
  readonly expectedVersion: number | undefined;
  readonly timestamp: Date;
  /** Puts the entity's version and timestamp back to what they were before the call. */
  restore(): void;
  /** Ends the call's hold on the entity (its `expectedVersion`), keeping the stamp. */
  release(): void;
}

// One per process: `expectedVersion(entity)` from one copy of the library must see a call of another's.
const expectedVersions = shared('expected-versions', () => new WeakMap<object, number>());
const continuedVersions = shared('continued-versions', () => new WeakMap<object, number>());

/**
 * @internal While set, a create of `entity` stamps `version` instead of `initialVersion`: `revert`
 * restores a deleted entity as the version after its tombstone, so its history continues. Pass
 * `undefined` to clear.
 */
export function continueVersion(entity: object, version: number | undefined): void {
  if (version === undefined) continuedVersions.delete(entity);
  else continuedVersions.set(entity, version);
}

/**
 * The version an entity had when the running decorated update or delete began: use it to
 * guard the write.
 *
 * ```ts
 * async update(order: Order, session: PoolClient) {
 *   return session.query('UPDATE orders SET total = $1, version = $2 WHERE id = $3 AND version = $4',
 *     [order.total, order.version, order.id, expectedVersion(order)]);
 * }
 * ```
 */
export function expectedVersion(entity: object): number | undefined {
  return expectedVersions.get(entity);
}

function remember(entity: Record<string, unknown>, field: string): FieldState {
  return { field, present: Object.hasOwn(entity, field), value: entity[field] };
}

function putBack(entity: Record<string, unknown>, state: FieldState): void {
  if (state.present) entity[state.field] = state.value;
  else delete entity[state.field];
}

/**
 * Stamps the entity for one attempt of the call: `@Versioned` sets version and timestamp;
 * history-only tracking stamps nothing and only records the expected version.
 */
export function stampEntity(plan: CallPlan, entity: Record<string, unknown>, entityType: string): Stamp {
  const current = entity[plan.versionField];
  const expected = plan.op === 'create' || !Number.isInteger(current) ? undefined : (current as number);
  if (!plan.versioned) {
    if (expected !== undefined) expectedVersions.set(entity, expected);
    const stamped = entity[plan.timestampField];
    return {
      version: undefined,
      expectedVersion: expected,
      timestamp: stamped instanceof Date ? stamped : plan.clock(),
      restore: () => expectedVersions.delete(entity),
      release: () => expectedVersions.delete(entity),
    };
  }
  const version = expected === undefined ? (continuedVersions.get(entity) ?? plan.initialVersion) : expected + 1;
  const timestamp = plan.clock();
  const before = [remember(entity, plan.versionField), remember(entity, plan.timestampField)];
  try {
    entity[plan.versionField] = version;
    entity[plan.timestampField] = timestamp;
  } catch (error) {
    for (const state of before) safePutBack(entity, state);
    throw new InvalidEntityError(
      `Cannot stamp ${entityType}: setting '${plan.versionField}' or '${plan.timestampField}' failed (${(error as Error).message}). ` +
        'Pass a mutable object whose version and timestamp fields can be assigned.',
      entityType,
      { cause: error },
    );
  }
  if (expected !== undefined) expectedVersions.set(entity, expected);
  return {
    version,
    expectedVersion: expected,
    timestamp,
    restore: () => {
      for (const state of before) putBack(entity, state);
      expectedVersions.delete(entity);
    },
    release: () => expectedVersions.delete(entity),
  };
}

function safePutBack(entity: Record<string, unknown>, state: FieldState): void {
  try {
    putBack(entity, state);
  } catch {
    // The field could not be written in the first place, so it still holds its old value.
  }
}
