import type { HistoryOp } from '../history/entry.js';
import { shared } from '../shared-state.js';

/** A class whose instances the ORM writes (a TypeORM entity, say). */
export type EntityClass = abstract new (...args: never[]) => unknown;

/**
 * A tracked entity type with settings of its own: the name its history is kept under, and the
 * fields never written to history (`ignore`) or written as `"[redacted]"` (`redact`).
 *
 * ```ts
 * const user: TrackedEntity = { entity: UserEntity, redact: ['password'] };
 * ```
 */
export interface TrackedEntity {
  readonly entity: EntityClass;
  /** Default: the class name. */
  readonly entityType?: string;
  readonly ignore?: readonly string[];
  readonly redact?: readonly string[];
}

/**
 * An entry of `track`: the entity class, or the class with its settings.
 *
 * ```ts
 * const track: TrackedType[] = [ArticleEntity, { entity: UserEntity, redact: ['password'] }];
 * ```
 */
export type TrackedType = EntityClass | TrackedEntity;

/** @internal The settings of one tracked type, resolved. */
export interface TrackedSettings {
  readonly entityType: string;
  readonly ignore: readonly string[];
  readonly redact: readonly string[];
}

/**
 * One write of a tracked entity the ORM made during a unit of work, as its hooks report it: the
 * version it wrote and the entity's state at that version (its columns, not its loaded
 * relations). `baseline` is the state of a row that predates adoption (version 0 or null, no
 * history), recorded before the write.
 *
 * ```ts
 * unit.record({ target: ArticleEntity, entityType: 'Article', entityId: '7', op: 'update', version: 3, state: { id: 7, title: 'x', version: 3 } });
 * ```
 */
export interface TrackedWrite {
  /** The entity's class, whose `track` settings (ignore, redact) apply. */
  readonly target: unknown;
  readonly entityType: string;
  readonly entityId: string;
  readonly op: HistoryOp;
  readonly version: number;
  readonly state: Record<string, unknown>;
  readonly baseline?: { readonly version: number; readonly state: Record<string, unknown> };
}

/**
 * What a unit of work gives the ORM's hooks while a decorated call runs: which classes are
 * tracked, how versions are stamped, and where each write is reported.
 *
 * ```ts
 * const settings = unit.tracked(metadata.target); // undefined: not tracked, let it pass
 * ```
 */
export interface UnitOfWork {
  readonly source: UnitOfWorkSource;
  readonly versionField: string;
  readonly timestampField: string;
  readonly initialVersion: number;
  /** The timestamp of every write of this call. */
  readonly timestamp: Date;
  tracked(target: unknown): TrackedSettings | undefined;
  record(write: TrackedWrite): void;
}

/**
 * The hooks of one ORM's data source (see `typeormUnitOfWork`): it opens a transaction, routes
 * the ORM's writes during `work` into it (the service's injected repositories and managers too),
 * and reports each write of a tracked entity to `unit.record`, versioned and checked against
 * concurrent writers. `work` receives the transaction's session (an `EntityManager`, say), which
 * the history store writes through, so entity and history commit together.
 *
 * ```ts
 * const source: UnitOfWorkSource = typeormUnitOfWork(dataSource, { track: [ArticleEntity] });
 * ```
 */
export interface UnitOfWorkSource {
  readonly name: string;
  readonly track: readonly TrackedType[];
  run<R>(unit: UnitOfWork, work: (session: unknown) => Promise<R>): Promise<R>;
}

const sources = shared('unit-of-work-sources', () => [] as UnitOfWorkSource[]);

/**
 * Makes `source` the data source of every decorated call given no session: such a call (say
 * `update(slug, dto)`) runs as one unit of work in a transaction on it. The NestJS module calls
 * this for `EventHistoryModule.forRoot({ dataSource, track })`. Returns a function that removes it.
 *
 * ```ts
 * const unregister = registerUnitOfWork(typeormUnitOfWork(dataSource, { track: [ArticleEntity] }));
 * ```
 */
export function registerUnitOfWork(source: UnitOfWorkSource): () => void {
  sources.unshift(source);
  return () => {
    const index = sources.indexOf(source);
    if (index >= 0) sources.splice(index, 1);
  };
}

/** @internal The registered source decorated calls without a session run on: the most recent. */
export function unitOfWorkSource(): UnitOfWorkSource | undefined {
  return sources[0];
}

/** @internal `track` resolved: a lookup that finds a class's settings through its prototype chain. */
export function trackedLookup(track: readonly TrackedType[]): (target: unknown) => TrackedSettings | undefined {
  const byClass = new Map<unknown, TrackedSettings>();
  for (const item of track) {
    const entity = typeof item === 'function' ? item : item.entity;
    const given: Partial<TrackedEntity> = typeof item === 'function' ? {} : item;
    byClass.set(
      entity,
      Object.freeze({
        entityType: given.entityType ?? entity.name,
        ignore: given.ignore ?? [],
        redact: given.redact ?? [],
      }),
    );
  }
  return (target) => {
    for (let current = target; typeof current === 'function'; current = Object.getPrototypeOf(current)) {
      const found = byClass.get(current);
      if (found !== undefined) return found;
    }
    return undefined;
  };
}
