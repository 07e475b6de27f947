import { ambient } from '../context.js';
import { headOf } from './chain.js';
import { assertStorable } from './codec.js';
import type {
  AnyHistoryEntry,
  ChainHead,
  EntityIdOptions,
  EntityTypeOf,
  EntityTypes,
  HistoryEntry,
  HistoryReader,
  HistoryWriter,
  ListOptions,
  SnapshotOf,
} from './entry.js';
import { byCodePoint, byEntityAndVersion, byVersion, entryAsOf, selectIds, selectRange, typedAs } from './reader.js';
import { HistoryStoreBase, versionTaken } from './store-base.js';

/**
 * History kept in memory, for tests and demos. It is not transactional: it needs no session
 * and writes at once, but it enforces the unique (entityType, entityId, version) key and, when
 * a transaction owned by this library rolls back, removes what that transaction wrote.
 *
 * ```ts
 * const history = new MemoryHistoryStore();
 * @Versioned() @HistoryTracked(history) class OrderService { ... }
 * await history.list('Order', '42');
 * ```
 */
export class MemoryHistoryStore<M extends EntityTypes = Record<string, unknown>>
  extends HistoryStoreBase<M>
  implements HistoryWriter, HistoryReader<M>
{
  readonly transactional = false;
  readonly #entries = new Map<string, HistoryEntry[]>();
  readonly #heads = new Map<string, ChainHead>();

  /** Rejects (never throws) with a `VersionConflictError` when the entity already has this version, as every store does. */
  save(entry: HistoryEntry): Promise<void> {
    try {
      this.#save(entry);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #save(entry: HistoryEntry): void {
    // The same rules as the database stores, so that what works here works there.
    assertStorable(entry);
    const key = keyOf(entry.entityType, entry.entityId);
    const versions = this.#entries.get(key) ?? [];
    if (versions.some((existing) => existing.version === entry.version)) {
      throw versionTaken(entry);
    }
    const stored = structuredClone(entry);
    versions.push(stored);
    versions.sort(byVersion);
    this.#entries.set(key, versions);
    ambient()?.tx?.onRollback.push(() => {
      const index = versions.indexOf(stored);
      if (index >= 0) versions.splice(index, 1);
    });
    if (entry.hash !== undefined) this.#saveHead(entry);
  }

  /** The chain head the entry carries, kept until a rollback of the transaction that wrote it. */
  #saveHead(entry: HistoryEntry): void {
    const head = headOf(entry) as ChainHead;
    const key = keyOf(entry.entityType, entry.entityId);
    const before = this.#heads.get(key);
    const stored = { ...head };
    this.#heads.set(key, stored);
    ambient()?.tx?.onRollback.push(() => {
      if (this.#heads.get(key) !== stored) return;
      if (before === undefined) this.#heads.delete(key);
      else this.#heads.set(key, before);
    });
  }

  /** The entity's chain head (see `ChainHead`), or `undefined`. */
  async head(entityType: EntityTypeOf<M>, entityId: string): Promise<ChainHead | undefined> {
    const head = this.#heads.get(keyOf(entityType, entityId));
    return head && { ...head };
  }

  async list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ListOptions = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]> {
    return typedAs(selectRange(this.#versions(entityType, entityId), opts).map((entry) => structuredClone(entry)));
  }

  async at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const found = this.#versions(entityType, entityId).find((entry) => entry.version === version);
    return typedAs(found && structuredClone(found));
  }

  async asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const found = entryAsOf(this.#versions(entityType, entityId), time);
    return typedAs(found && structuredClone(found));
  }

  /** The highest version; a `{ session }` option is accepted and has no effect (writes are immediate). */
  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const found = this.#versions(entityType, entityId).at(-1);
    return typedAs(found && structuredClone(found));
  }

  /** Every entry written in one transaction, by entity type, id and version. */
  async byTransaction(txId: string): Promise<AnyHistoryEntry<M>[]> {
    return typedAs(
      this.all()
        .filter((entry) => entry.txId === txId)
        .sort(byEntityAndVersion),
    );
  }

  /** The entity types with history, in code point order. */
  async entityTypes(): Promise<string[]> {
    return [...new Set(this.#keys().map(([type]) => type))].sort(byCodePoint);
  }

  /** The ids of `entityType` with history, in code point order, within `opts` (see `EntityIdOptions`). */
  async entityIds(entityType: string, opts: EntityIdOptions = {}): Promise<string[]> {
    return selectIds(
      this.#keys()
        .filter(([type]) => type === entityType)
        .map(([, id]) => id),
      opts,
    );
  }

  /** The (type, id) of every entity that holds at least one entry (a rollback can leave one empty). */
  #keys(): [string, string][] {
    const keys: [string, string][] = [];
    for (const versions of this.#entries.values()) {
      const first = versions[0];
      if (first !== undefined) keys.push([first.entityType, first.entityId]);
    }
    return keys;
  }

  /** Every entry of every entity, in the order they were written per entity. */
  all(): AnyHistoryEntry<M>[] {
    return typedAs([...this.#entries.values()].flat().map((entry) => structuredClone(entry)));
  }

  clear(): void {
    this.#entries.clear();
    this.#heads.clear();
  }

  #versions(entityType: string, entityId: string): readonly HistoryEntry[] {
    return this.#entries.get(keyOf(entityType, entityId)) ?? [];
  }
}

function keyOf(entityType: string, entityId: string): string {
  return `${entityType}\u0000${entityId}`;
}
