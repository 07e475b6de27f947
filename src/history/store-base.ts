import { VersionConflictError } from '../errors.js';
import type {
  EntityTypeOf,
  EntityTypes,
  HistoryEntry,
  HistoryPage,
  ListOptions,
  PageOptions,
  SnapshotOf,
  VersionChanges,
} from './entry.js';
import { changesOf, pageOf } from './reader.js';

/**
 * What every built-in store shares: cursor pages and version-by-version changes, both built on
 * the store's own `list`, so each store implements only the queries that touch its database.
 * `M` types the reads by entity type (see `EntityTypes`).
 *
 * ```ts
 * class MyStore extends HistoryStoreBase { async list(type, id, opts) { … } }
 * ```
 */
export abstract class HistoryStoreBase<M extends EntityTypes = Record<string, unknown>> {
  /** The entity's entries within `opts`, ascending (or descending with `order: 'desc'`). */
  abstract list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: ListOptions,
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]>;

  /**
   * One page of the entity's history by version, forwards (ascending) or backwards
   * (descending), with the options of the next page when there is one.
   *
   * ```ts
   * const newest = await history.page('Order', '42', { direction: 'backward', limit: 20 });
   * const older = newest.next && (await history.page('Order', '42', newest.next));
   * ```
   */
  page<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: PageOptions,
  ): Promise<HistoryPage<SnapshotOf<M, K>>> {
    return pageOf((query) => this.list(entityType, entityId, query), opts);
  }

  /**
   * Each version of the entity, oldest first, with its field-level changes from the previous
   * one (see `diff`); read a page at a time.
   *
   * ```ts
   * for await (const { entry, changes } of history.changes('Order', '42')) render(entry.version, changes);
   * ```
   */
  changes<K extends EntityTypeOf<M>>(entityType: K, entityId: string): AsyncIterable<VersionChanges<SnapshotOf<M, K>>> {
    return changesOf((opts) => this.page(entityType, entityId, opts));
  }
}

/** @internal What a store throws when, written without a session, the entry's version is already stored. */
export function versionTaken(entry: HistoryEntry, cause?: unknown): VersionConflictError {
  return new VersionConflictError(entry.entityType, entry.entityId, entry.version - 1, {
    cause,
    detail: `history already holds version ${entry.version}`,
    duplicate: entry.op === 'create',
  });
}
