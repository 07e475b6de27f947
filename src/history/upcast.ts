import type {
  AnyHistoryEntry,
  EntityTypeOf,
  EntityTypes,
  HistoryEntry,
  HistoryPage,
  HistoryReader,
  ListOptions,
  PageOptions,
  ReadOptions,
  SnapshotOf,
  VersionChanges,
} from './entry.js';
import { changesOf, typedAs } from './reader.js';

/**
 * Brings one entity type's old snapshots to the current shape. `schemaVersion` is the entry's
 * (1 for entries written before `@HistoryTracked({ schemaVersion })` was set). It must not
 * mutate its argument's nested objects that it does not return.
 *
 * ```ts
 * const order: Upcaster = (snapshot, from) => (from < 2 ? { ...snapshot, currency: 'EUR' } : snapshot);
 * ```
 */
export type Upcaster = (snapshot: Record<string, unknown>, schemaVersion: number) => Record<string, unknown>;

/**
 * Upcasters by entity type: the object's own properties (inherited ones such as `toString` are
 * not upcasters).
 *
 * ```ts
 * const upcasters: Upcasters = { Order: (s, v) => (v < 2 ? { ...s, currency: 'EUR' } : s) };
 * ```
 */
export type Upcasters = Readonly<Record<string, Upcaster>>;

/**
 * A reader that returns every snapshot in its entity type's current shape: each entry read from
 * `reader` goes through the upcaster of its entity type (entries of other types pass unchanged),
 * which receives the entry's `schemaVersion` (1 when it has none). Entries keep the
 * `schemaVersion` they were stored with, so you can tell an upcast one. `changes` diffs the
 * upcast snapshots. Check the hash chain with `verifyHistory` on the store itself, not on this.
 *
 * ```ts
 * const history = upcastReader(store, {
 *   Order: (snapshot, from) => (from < 2 ? { ...snapshot, currency: 'EUR' } : snapshot),
 * });
 * (await history.latest('Order', '42'))?.snapshot.currency; // 'EUR' even for v1 entries
 * ```
 */
export function upcastReader<M extends EntityTypes = Record<string, unknown>>(
  reader: HistoryReader<M>,
  upcasters: Upcasters,
): UpcastReader<M> {
  return new UpcastReader(reader, upcasters);
}

/**
 * The reader {@link upcastReader} returns. It keeps the wrapped reader's `EntityTypes` map: give
 * the store the map of today's shapes, which the upcasters produce.
 *
 * ```ts
 * const history: UpcastReader = upcastReader(store, { Order: upgradeOrder });
 * ```
 */
export class UpcastReader<M extends EntityTypes = Record<string, unknown>> implements HistoryReader<M> {
  readonly #source: HistoryReader;

  constructor(
    /** The reader entries come from, unchanged. */
    readonly source: HistoryReader<M>,
    readonly upcasters: Upcasters,
  ) {
    this.#source = source as unknown as HistoryReader;
  }

  async list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: ListOptions,
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]> {
    return typedAs((await this.#source.list(entityType, entityId, opts)).map((entry) => this.upcast(entry)));
  }

  async at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    return typedAs(this.#maybe(await this.#source.at(entityType, entityId, version)));
  }

  async asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    return typedAs(this.#maybe(await this.#source.asOf(entityType, entityId, time)));
  }

  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: ReadOptions,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    return typedAs(this.#maybe(await this.#source.latest(entityType, entityId, opts)));
  }

  async page<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: PageOptions,
  ): Promise<HistoryPage<SnapshotOf<M, K>>> {
    if (this.#source.page === undefined) {
      throw new TypeError('upcastReader: the wrapped reader has no page(); use a built-in store.');
    }
    const found = await this.#source.page(entityType, entityId, opts);
    return { ...found, entries: typedAs(found.entries.map((entry) => this.upcast(entry))) };
  }

  async byTransaction(txId: string): Promise<AnyHistoryEntry<M>[]> {
    if (this.#source.byTransaction === undefined) {
      throw new TypeError('upcastReader: the wrapped reader has no byTransaction(); use a built-in store.');
    }
    return typedAs((await this.#source.byTransaction(txId)).map((entry) => this.upcast(entry)));
  }

  changes<K extends EntityTypeOf<M>>(entityType: K, entityId: string): AsyncIterable<VersionChanges<SnapshotOf<M, K>>> {
    return changesOf((opts) => this.page(entityType, entityId, opts));
  }

  /** One entry in its current shape. */
  upcast(entry: HistoryEntry): HistoryEntry {
    // Own properties only: `toString`, `constructor` or `__proto__` of the object's prototype are no upcasters.
    const upcaster = Object.hasOwn(this.upcasters, entry.entityType) ? this.upcasters[entry.entityType] : undefined;
    if (typeof upcaster !== 'function' || entry.snapshot === null || typeof entry.snapshot !== 'object') return entry;
    return { ...entry, snapshot: upcaster(entry.snapshot as Record<string, unknown>, entry.schemaVersion ?? 1) };
  }

  #maybe(entry: HistoryEntry | undefined): HistoryEntry | undefined {
    return entry === undefined ? undefined : this.upcast(entry);
  }
}
