import { ambient } from '../context.js';
import { InvalidEntityError, TransactionStateError, VersionConflictError } from '../errors.js';
import { shared } from '../shared-state.js';
import { type TypeOrmSession, typeormAdapter } from '../transactions/typeorm.js';
import type { TrackedSettings, TrackedType, TrackedWrite, UnitOfWork, UnitOfWorkSource } from './contract.js';

/** The part of a TypeORM `ColumnMetadata` the hooks read. */
interface ColumnLike {
  readonly propertyName: string;
  readonly propertyPath: string;
  readonly isVersion: boolean;
  readonly isCreateDate?: boolean;
  readonly isUpdateDate?: boolean;
  getEntityValue(entity: object): unknown;
}

/** The part of a TypeORM `EntityMetadata` the hooks read. */
interface MetadataLike {
  readonly target: unknown;
  readonly name: string;
  readonly columns: readonly ColumnLike[];
  readonly primaryColumns: readonly ColumnLike[];
  readonly versionColumn?: ColumnLike;
  getEntityIdMap(entity: object | undefined): Record<string, unknown> | undefined;
}

/** The part of a TypeORM `EntityManager` the hooks use. */
interface ManagerLike {
  readonly queryRunner?: object;
  findOne(target: unknown, options: object): Promise<object | null>;
  find(target: unknown, options: object): Promise<object[]>;
  update(target: unknown, criteria: unknown, partial: object, ...rest: unknown[]): Promise<unknown>;
  delete(target: unknown, criteria: unknown, ...rest: unknown[]): Promise<unknown>;
}

/**
 * The part of a TypeORM `DataSource` the unit of work uses.
 *
 * ```ts
 * const source: TypeOrmDataSourceLike = dataSource;
 * ```
 */
export interface TypeOrmDataSourceLike {
  readonly options: { readonly type?: unknown };
  readonly manager: object;
  readonly subscribers: unknown[];
  hasMetadata(target: unknown): boolean;
  getMetadata(target: unknown): unknown;
}

/** The part of a TypeORM subscriber event the hooks read. */
interface EventLike {
  readonly entity?: object;
  readonly databaseEntity?: object;
  readonly metadata: MetadataLike;
  readonly queryRunner: object;
  readonly manager: ManagerLike;
}

/** What one running unit of work holds on its data source. */
interface UnitState {
  readonly dataSource: TypeOrmDataSourceLike;
  readonly manager: ManagerLike;
  readonly runner: object | undefined;
  /** Writes checked before the ORM ran them, recorded once it has. */
  readonly pending: WeakMap<object, Omit<TrackedWrite, 'state'> & { readonly base: Record<string, unknown> }>;
  /** Inside the unit's own update/delete by criteria: the query builder's events are ours. */
  passing: number;
}

const states = shared('typeorm-unit-states', () => new WeakMap<UnitOfWork, UnitState>());
const routed = shared('typeorm-routed-managers', () => new WeakSet<object>());

/** Databases on which TypeORM refuses row locks; one writer at a time there anyway. */
const NO_ROW_LOCKS = new Set(['sqlite', 'better-sqlite3', 'sqljs', 'capacitor', 'cordova', 'expo', 'nativescript']);

/**
 * Options of {@link typeormUnitOfWork}.
 *
 * ```ts
 * const options: TypeOrmUnitOfWorkOptions = { track: [ArticleEntity, { entity: UserEntity, redact: ['password'] }] };
 * ```
 */
export interface TypeOrmUnitOfWorkOptions {
  /** The entity classes whose writes are versioned and recorded. */
  readonly track: readonly TrackedType[];
}

/**
 * The unit of work on a TypeORM `DataSource`. A decorated method given no session (say
 * `update(slug, dto)`) then runs in a transaction the library opens on `dataSource`, and while it
 * runs, the data source's root `EntityManager` (the one `@InjectEntityManager()` gives, and the one
 * every `dataSource.getRepository()` / `@InjectRepository()` repository writes through) sends its
 * work to the transaction's manager; outside a unit of work it behaves as before. Every write of a
 * tracked entity in the transaction — `save`, `insert`, `update`, `delete`, `remove`, cascades — is
 * versioned (TypeORM's `@VersionColumn`, or a plain `version` column the library keeps), checked
 * against concurrent writers (the row is locked and its version compared with the one the entity
 * carries: a stale one is `VersionConflictError`) and recorded as a history entry. A row at version
 * 0 or null (one that predates adoption) is adopted: its state before the write becomes a baseline
 * entry. A tracked write on another connection inside the call (a query builder with a query runner
 * of its own) would escape the transaction, so it fails with `TransactionStateError`
 * (`OUTSIDE_TRANSACTION`), as does an update or delete by query builder, whose rows the hooks cannot
 * see: use the repository's or manager's `update` and `delete`.
 *
 * ```ts
 * registerUnitOfWork(typeormUnitOfWork(dataSource, { track: [ArticleEntity, UserEntity] }));
 * ```
 */
export function typeormUnitOfWork(
  dataSource: TypeOrmDataSourceLike,
  options: TypeOrmUnitOfWorkOptions,
): UnitOfWorkSource {
  routeRootManager(dataSource);
  // TypeORM drives SQLite over one connection, where two transactions cannot be open at once: its units queue.
  const queue = NO_ROW_LOCKS.has(String(dataSource.options.type)) ? serialQueue() : undefined;
  const source: UnitOfWorkSource = Object.freeze({
    name: 'typeorm',
    track: Object.freeze([...options.track]),
    run: <R>(unit: UnitOfWork, work: (session: unknown) => Promise<R>): Promise<R> => {
      if (!dataSource.subscribers.includes(subscriber)) dataSource.subscribers.push(subscriber);
      const open = (): Promise<R> =>
        typeormAdapter.run(dataSource as unknown as TypeOrmSession, async (opened?: unknown) => {
          const manager = opened as ManagerLike;
          const state: UnitState = {
            dataSource,
            manager,
            runner: manager.queryRunner,
            pending: new WeakMap(),
            passing: 0,
          };
          guardCriteriaWrites(unit, state);
          states.set(unit, state);
          try {
            return await work(manager);
          } finally {
            states.delete(unit);
          }
        });
      return queue === undefined ? open() : queue(open);
    },
  });
  return source;
}

/** Runs the tasks given to it one after the other. */
function serialQueue(): <R>(task: () => Promise<R>) => Promise<R> {
  let tail: Promise<unknown> = Promise.resolve();
  return <R>(task: () => Promise<R>): Promise<R> => {
    const run = tail.then(task, task);
    tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };
}

/** The unit's manager, when `dataSource` has a unit of work running in this async context. */
function unitManager(dataSource: TypeOrmDataSourceLike): ManagerLike | undefined {
  const unit = ambient()?.unit;
  const state = unit === undefined ? undefined : states.get(unit);
  return state?.dataSource === dataSource ? state.manager : undefined;
}

/**
 * Every method of the root manager sends its work to the running unit's manager, as
 * typeorm-transactional routes a repository's manager: repositories hold the root manager and call
 * it, so they follow too. The methods are own properties of that one object; other managers (those
 * of transactions and query runners) are untouched.
 */
function routeRootManager(dataSource: TypeOrmDataSourceLike): void {
  const root = dataSource.manager as Record<string, unknown>;
  if (routed.has(root)) return;
  routed.add(root);
  for (const name of methodNames(root)) {
    const original = root[name] as (...args: unknown[]) => unknown;
    Object.defineProperty(root, name, {
      configurable: true,
      writable: true,
      enumerable: false,
      value: function routedToUnit(this: unknown, ...args: unknown[]): unknown {
        const manager = this === root ? unitManager(dataSource) : undefined;
        if (manager === undefined) return original.apply(this, args);
        return (
          (manager as unknown as Record<string, (...a: unknown[]) => unknown>)[name] as (...a: unknown[]) => unknown
        ).apply(manager, args);
      },
    });
  }
}

function methodNames(object: object): string[] {
  const names = new Set<string>();
  for (let proto = Object.getPrototypeOf(object); proto !== null && proto !== Object.prototype; ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      if (name !== 'constructor' && typeof descriptor?.value === 'function') names.add(name);
    }
    proto = Object.getPrototypeOf(proto);
  }
  return [...names];
}

/** The unit's state and the tracked settings of the event's entity, or `undefined` when the hooks let it pass. */
function inUnit(event: EventLike): { unit: UnitOfWork; state: UnitState; settings: TrackedSettings } | undefined {
  const scope = ambient();
  const unit = scope?.unit;
  if (unit === undefined || scope?.call !== undefined) return undefined; // a decorated call with a session records its own
  const state = states.get(unit);
  if (state === undefined) return undefined;
  const settings = unit.tracked(event.metadata.target);
  if (settings === undefined) return undefined;
  if (event.queryRunner !== state.runner) {
    throw new TransactionStateError(
      'typeorm',
      'OUTSIDE_TRANSACTION',
      `A ${settings.entityType} was written on a connection other than the unit of work's transaction (a query ` +
        'runner or query builder of its own), so it would escape the transaction and its history. Write through ' +
        'the injected repository or EntityManager, which the unit of work routes into its transaction.',
    );
  }
  return { unit, state, settings };
}

function versionColumn(metadata: MetadataLike, unit: UnitOfWork, entityType: string): ColumnLike {
  const column = metadata.versionColumn ?? metadata.columns.find((c) => c.propertyName === unit.versionField);
  if (column !== undefined) return column;
  throw new InvalidEntityError(
    `${entityType} is tracked but has no version column. Add \`@VersionColumn() ${unit.versionField}: number\` to the ` +
      'entity (existing rows start at 0 and are adopted on their first tracked write).',
    entityType,
  );
}

function timestampColumn(metadata: MetadataLike, unit: UnitOfWork): ColumnLike | undefined {
  return metadata.columns.find(
    (c) => c.propertyName === unit.timestampField && c.isCreateDate !== true && c.isUpdateDate !== true,
  );
}

/** The entity's columns (relations as the ids of their join columns, never the loaded objects). */
function rowState(metadata: MetadataLike, entity: object): Record<string, unknown> {
  const state: Record<string, unknown> = {};
  for (const column of metadata.columns) {
    const value = column.getEntityValue(entity);
    if (value !== undefined) state[column.propertyPath] = value;
  }
  return state;
}

function idString(metadata: MetadataLike, entity: object, entityType: string): string {
  const values = metadata.primaryColumns.map((c) => c.getEntityValue(entity));
  if (values.length === 1 && values[0] !== undefined && values[0] !== null) return String(values[0]);
  if (values.length > 1 && values.every((v) => v !== undefined && v !== null)) return JSON.stringify(values);
  throw new InvalidEntityError(
    `${entityType} has no primary key value after the write, so its history cannot be keyed.`,
    entityType,
  );
}

const isInteger = (value: unknown): value is number => Number.isInteger(value);

/** The row as it stands now, locked until the transaction ends, so no writer can change it between check and commit. */
async function lockedRows(state: UnitState, metadata: MetadataLike, where: unknown): Promise<object[]> {
  const lock = NO_ROW_LOCKS.has(String(state.dataSource.options.type)) ? {} : { lock: { mode: 'pessimistic_write' } };
  return state.manager.find(metadata.target, { where, withDeleted: true, loadEagerRelations: false, ...lock });
}

const subscriber = Object.freeze({
  beforeInsert(event: EventLike): void {
    const found = event.entity === undefined ? undefined : inUnit(event);
    if (found === undefined || event.entity === undefined) return;
    const { unit, settings } = found;
    const entity = event.entity as Record<string, unknown>;
    const column = versionColumn(event.metadata, unit, settings.entityType);
    if (!column.isVersion) entity[column.propertyName] = unit.initialVersion;
    const stamp = timestampColumn(event.metadata, unit);
    if (stamp !== undefined) entity[stamp.propertyName] = unit.timestamp;
  },

  afterInsert(event: EventLike): void {
    const found = event.entity === undefined ? undefined : inUnit(event);
    if (found === undefined || event.entity === undefined) return;
    const { unit, settings } = found;
    const column = versionColumn(event.metadata, unit, settings.entityType);
    const version = column.getEntityValue(event.entity);
    unit.record({
      target: event.metadata.target,
      entityType: settings.entityType,
      entityId: idString(event.metadata, event.entity, settings.entityType),
      op: 'create',
      version: isInteger(version) ? version : unit.initialVersion,
      state: rowState(event.metadata, event.entity),
    });
  },

  beforeUpdate(event: EventLike): Promise<void> | undefined {
    return beforeChange(event, 'update');
  },

  afterUpdate(event: EventLike): void {
    afterChange(event);
  },

  beforeRemove(event: EventLike): Promise<void> | undefined {
    return beforeChange(event, 'delete');
  },

  afterRemove(event: EventLike): void {
    afterChange(event);
  },
});

/** `save` or `remove` of a loaded entity: lock its row, check its version, stamp the next one. */
function beforeChange(event: EventLike, op: 'update' | 'delete'): Promise<void> | undefined {
  const found = inUnit(event);
  if (found === undefined) return undefined;
  const { unit, state, settings } = found;
  if (event.entity === undefined || event.databaseEntity === undefined) {
    if (state.passing > 0) return undefined;
    throw new TransactionStateError(
      'typeorm',
      'OUTSIDE_TRANSACTION',
      `A query-builder ${op} of ${settings.entityType} names no rows the unit of work can version and record. Use ` +
        `the repository's or EntityManager's ${op === 'update' ? 'save/update' : 'remove/delete'} instead.`,
    );
  }
  const entity = event.entity as Record<string, unknown>;
  const metadata = event.metadata;
  return (async () => {
    const column = versionColumn(metadata, unit, settings.entityType);
    const where = metadata.getEntityIdMap(event.databaseEntity);
    const entityId = idString(metadata, event.databaseEntity as object, settings.entityType);
    const [row] = await lockedRows(state, metadata, where);
    if (row === undefined) {
      throw new VersionConflictError(settings.entityType, entityId, numberOr(column.getEntityValue(entity)), {
        detail: 'the row no longer exists',
      });
    }
    const { next, adopted } = checked(unit, settings, column, row, entityId, column.getEntityValue(entity));
    const base = rowState(metadata, row);
    if (op === 'update') {
      entity[column.propertyName] = next;
      const stamp = timestampColumn(metadata, unit);
      if (stamp !== undefined) entity[stamp.propertyName] = unit.timestamp;
    }
    state.pending.set(entity, {
      target: metadata.target,
      entityType: settings.entityType,
      entityId,
      op,
      version: next,
      base,
      ...(adopted === undefined ? {} : { baseline: { version: adopted, state: base } }),
    });
  })();
}

function afterChange(event: EventLike): void {
  const found = event.entity === undefined ? undefined : inUnit(event);
  if (found === undefined || event.entity === undefined) return;
  const pending = found.state.pending.get(event.entity);
  if (pending === undefined) return;
  found.state.pending.delete(event.entity);
  const { base, ...write } = pending;
  const column = versionColumn(event.metadata, found.unit, found.settings.entityType);
  const after = write.op === 'delete' ? {} : rowState(event.metadata, event.entity);
  found.unit.record({ ...write, state: { ...base, ...after, [column.propertyPath]: write.version } });
}

function numberOr(value: unknown): number | undefined {
  return isInteger(value) ? value : undefined;
}

/** The version check of one row; `adopted` is the version of a row that predates adoption (0 for null). */
function checked(
  unit: UnitOfWork,
  settings: TrackedSettings,
  column: ColumnLike,
  row: object,
  entityId: string,
  expected: unknown,
): { next: number; adopted: number | undefined } {
  const version = column.getEntityValue(row);
  if (isInteger(expected) && expected !== version) {
    throw new VersionConflictError(settings.entityType, entityId, expected, {
      detail: `the row is at version ${String(version)}`,
    });
  }
  if (isInteger(version) && version >= unit.initialVersion) return { next: version + 1, adopted: undefined };
  const base = isInteger(version) ? version : 0;
  return { next: Math.max(base + 1, unit.initialVersion), adopted: base };
}

/**
 * `update(criteria, partial)` and `delete(criteria)` of the unit's manager: the rows they match are
 * locked and read first, so each is checked (against a `version` in `partial`), versioned and
 * recorded; then each row is written by its primary key.
 */
function guardCriteriaWrites(unit: UnitOfWork, state: UnitState): void {
  const manager = state.manager as ManagerLike & Record<string, unknown>;
  const update = manager.update;
  const remove = manager.delete;
  const tracked = (target: unknown): { metadata: MetadataLike; settings: TrackedSettings } | undefined => {
    if (!state.dataSource.hasMetadata(target)) return undefined;
    const metadata = state.dataSource.getMetadata(target) as MetadataLike;
    const settings = unit.tracked(metadata.target);
    return settings === undefined ? undefined : { metadata, settings };
  };
  const through = async <R>(work: () => Promise<R>): Promise<R> => {
    state.passing++;
    try {
      return await work();
    } finally {
      state.passing--;
    }
  };
  Object.defineProperty(manager, 'update', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: async function trackedUpdate(
      this: ManagerLike,
      target: unknown,
      criteria: unknown,
      partial: object,
      ...rest: unknown[]
    ): Promise<unknown> {
      const found = tracked(target);
      if (found === undefined || ambient()?.call !== undefined)
        return update.call(this, target, criteria, partial, ...rest);
      const { metadata, settings } = found;
      const column = versionColumn(metadata, unit, settings.entityType);
      const expected = (partial as Record<string, unknown>)[column.propertyName];
      const stamp = timestampColumn(metadata, unit);
      let affected = 0;
      for (const row of await lockedRows(state, metadata, whereOf(metadata, criteria))) {
        const entityId = idString(metadata, row, settings.entityType);
        const { next, adopted } = checked(unit, settings, column, row, entityId, expected);
        const ids = metadata.getEntityIdMap(row);
        const set = {
          ...partial,
          [column.propertyName]: next,
          ...(stamp ? { [stamp.propertyName]: unit.timestamp } : {}),
        };
        await through(() => update.call(this, target, ids, set, ...rest));
        affected++;
        const [after] = await lockedRows(state, metadata, ids);
        const base = rowState(metadata, row);
        unit.record({
          target: metadata.target,
          entityType: settings.entityType,
          entityId,
          op: 'update',
          version: next,
          state: { ...base, ...(after === undefined ? {} : rowState(metadata, after)) },
          ...(adopted === undefined ? {} : { baseline: { version: adopted, state: base } }),
        });
      }
      return { raw: [], affected, generatedMaps: [] };
    },
  });
  Object.defineProperty(manager, 'delete', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: async function trackedDelete(
      this: ManagerLike,
      target: unknown,
      criteria: unknown,
      ...rest: unknown[]
    ): Promise<unknown> {
      const found = tracked(target);
      if (found === undefined || ambient()?.call !== undefined) return remove.call(this, target, criteria, ...rest);
      const { metadata, settings } = found;
      const column = versionColumn(metadata, unit, settings.entityType);
      let affected = 0;
      for (const row of await lockedRows(state, metadata, whereOf(metadata, criteria))) {
        const entityId = idString(metadata, row, settings.entityType);
        const { next, adopted } = checked(unit, settings, column, row, entityId, undefined);
        await through(() => remove.call(this, target, metadata.getEntityIdMap(row), ...rest));
        affected++;
        const base = rowState(metadata, row);
        unit.record({
          target: metadata.target,
          entityType: settings.entityType,
          entityId,
          op: 'delete',
          version: next,
          state: { ...base, [column.propertyPath]: next },
          ...(adopted === undefined ? {} : { baseline: { version: adopted, state: base } }),
        });
      }
      return { raw: [], affected };
    },
  });
}

/** TypeORM's criteria (an id, ids, or a where object) as `find` options' `where`. */
function whereOf(metadata: MetadataLike, criteria: unknown): unknown {
  const [primary] = metadata.primaryColumns;
  const byId = (value: unknown): unknown => (primary === undefined ? value : { [primary.propertyName]: value });
  if (Array.isArray(criteria)) return criteria.map((item) => (isPrimitive(item) ? byId(item) : item));
  return isPrimitive(criteria) ? byId(criteria) : criteria;
}

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function') || value instanceof Date;
}
