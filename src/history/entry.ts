/** What a decorated call did to the entity. */
export type HistoryOp = 'create' | 'update' | 'delete';

/**
 * One version of one entity, as written to history. `T` is the snapshot's type: a store built
 * with an {@link EntityTypes} map types its reads by entity type.
 *
 * ```ts
 * const store = new MemoryHistoryStore<{ Order: Order }>();
 * const entry: HistoryEntry<Order> | undefined = await store.at('Order', '42', 3);
 * entry?.snapshot.total; // the order's total at version 3
 * ```
 */
export interface HistoryEntry<T = unknown> {
  entityType: string;
  entityId: string;
  version: number;
  op: HistoryOp;
  timestamp: Date;
  /** A deep copy at this version, ignored fields removed and redacted fields masked. */
  snapshot: T;
  /** From `withHistoryContext`. */
  actor?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
  /** Equal for every entry written in one transaction. */
  txId?: string;
  /** The snapshot's shape, from `@HistoryTracked({ schemaVersion })`; see `upcastReader`. */
  schemaVersion?: number;
  /**
   * With `@HistoryTracked({ chain })`: over the entry's canonical content and `prevHash`, a
   * SHA-256 (hex), or with a key an HMAC-SHA-256 as `hmac:<keyId>:<base64url>`.
   */
  hash?: string;
  /** With `chain`: the hash of the entity's previous entry, absent on its first chained entry. */
  prevHash?: string;
}

/**
 * The anchor of an entity's chain, which every chained write upserts (in its own transaction)
 * into the store's heads table (`<table>_heads`; `<collection>_heads` for MongoDB): the newest
 * chained version and its hash, and with a key, a MAC over both. `verifyHistory` compares the
 * history's newest entry with it, so deleting the newest entries (or stripping their hashes) is
 * found without being told the entity's version.
 *
 * ```ts
 * const head: ChainHead | undefined = await store.head('Order', '42');
 * ```
 */
export interface ChainHead {
  readonly entityType: string;
  readonly entityId: string;
  readonly version: number;
  readonly hash: string;
  /** With a key: `hmac:<keyId>:<base64url>` over the other four fields. */
  readonly mac?: string;
}

/**
 * Anything with a `save(entry, session)` method can receive history entries; the session is
 * the one the decorated call runs in, so the write joins its transaction.
 *
 * ```ts
 * class OrderHistoryService implements HistoryWriter<ClientSession> {
 *   save(entry: HistoryEntry, session?: ClientSession) { return this.col.insertOne(entry, { session }); }
 * }
 * ```
 */
export interface HistoryWriter<S = unknown> {
  save(entry: HistoryEntry, session?: S): unknown;
  /** `false` when the writer keeps entries outside any database transaction (the memory store). */
  readonly transactional?: boolean;
}

/**
 * Bounds for {@link HistoryReader.list}. Versions are inclusive.
 *
 * ```ts
 * await store.list('Order', '42', { fromVersion: 2, limit: 10, order: 'desc' });
 * ```
 */
export interface ListOptions {
  fromVersion?: number;
  toVersion?: number;
  limit?: number;
  /** `'asc'` (default) or `'desc'`: newest first, so `limit` keeps the newest. */
  order?: 'asc' | 'desc';
}

/**
 * Bounds for {@link HistoryReader.entityIds}: a prefix to search by, and cursor paging by id.
 *
 * ```ts
 * const first = await store.entityIds('Order', { prefix: 'A-', limit: 50 });
 * const more = await store.entityIds('Order', { prefix: 'A-', after: first.at(-1), limit: 50 });
 * ```
 */
export interface EntityIdOptions {
  /** Only ids that start with this text, compared exactly (case-sensitive). */
  prefix?: string;
  /** Only ids after this one (exclusive): the last id of the previous page. */
  after?: string;
  /** At most this many ids; default all. */
  limit?: number;
}

/**
 * Options of the session-aware reads the pipeline uses (`latest(type, id, { session })`).
 *
 * ```ts
 * await store.latest('Order', '42', { session: client }); // reads inside client's transaction
 * ```
 */
export interface ReadOptions<S = unknown> {
  /** Read through this session (and its open transaction) instead of the store's connection. */
  session?: S;
}

/**
 * One page of {@link HistoryReader.page}: forwards from `after`, or backwards from `before`.
 * Versions are exclusive bounds, so a page's `next` continues exactly where it stopped.
 *
 * ```ts
 * let page = await store.page('Order', '42', { limit: 50 });
 * while (page.next) page = await store.page('Order', '42', page.next);
 * ```
 */
export interface PageOptions {
  /** Entries with a version above this one (forwards). */
  after?: number;
  /** Entries with a version below this one (backwards). */
  before?: number;
  /** Default 50; at least 1. */
  limit?: number;
  /** Default `'backward'` when `before` is given, else `'forward'`. Forward pages are ascending, backward pages descending. */
  direction?: 'forward' | 'backward';
}

/**
 * What {@link HistoryReader.page} returns.
 *
 * ```ts
 * const { entries, next } = await store.page('Order', '42', { direction: 'backward', limit: 20 });
 * ```
 */
export interface HistoryPage<T = unknown> {
  entries: HistoryEntry<T>[];
  /** The options of the following page in the same direction; absent on the last page. */
  next?: PageOptions;
}

/**
 * One field-level difference found by `diff`.
 *
 * ```ts
 * const change: Difference = { path: 'lines[1].qty', kind: 'change', before: 1, after: 2 };
 * ```
 */
export interface Difference {
  /** Dotted path; array elements as `[index]`, or `[id=<id>]` when matched by `id`. */
  path: string;
  kind: 'add' | 'remove' | 'change';
  /** Absent for `add`. */
  before?: unknown;
  /** Absent for `remove`. */
  after?: unknown;
}

/**
 * One version and what it changed, as {@link HistoryReader.changes} yields it.
 *
 * ```ts
 * for await (const { entry, changes } of store.changes('Order', '42')) render(entry.version, changes);
 * ```
 */
export interface VersionChanges<T = unknown> {
  entry: HistoryEntry<T>;
  /** The version compared with (the previous entry), absent for the first. */
  previousVersion?: number;
  /** `diff(previous snapshot, this snapshot)`; against `{}` for the first entry. */
  changes: Difference[];
}

/**
 * The snapshot type of each entity type a store holds, by entity type: `{ Order: Order }`. Give it
 * to a store (`new PostgresHistoryStore<{ Order: Order; Invoice: Invoice }>(pool)`) and its reads
 * return `HistoryEntry<Order>` for `'Order'`, and refuse entity types the map does not name. The
 * default, `Record<string, unknown>`, takes any entity type and types snapshots `unknown`.
 *
 * The map states what the snapshots hold; the store does not check it. Snapshots are data: class
 * instances come back as plain objects, `ignore`d fields are absent and `redact`ed ones
 * `"[redacted]"`, so describe them as such (`Omit<Order, 'card'>`, or an interface of the data).
 *
 * ```ts
 * interface Shop { Order: Order; Invoice: Invoice }
 * const history = new MemoryHistoryStore<Shop>();
 * const order = await history.latest('Order', '42'); // HistoryEntry<Order> | undefined
 * ```
 */
export type EntityTypes = object;

/**
 * The entity types an {@link EntityTypes} map names; any string for a map that names none (the
 * default, or a store whose type arguments were not inferred, as in Nest's `app.get(Store)`).
 */
export type EntityTypeOf<M extends EntityTypes> = [keyof M] extends [never] ? string : keyof M & string;

/** The snapshot type the map gives an entity type (`unknown` for one it does not name). */
export type SnapshotOf<M extends EntityTypes, K extends string> = (M & Record<string, unknown>)[K];

/**
 * An entry of any of the map's entity types, discriminated by `entityType` (what
 * `byTransaction` returns).
 *
 * ```ts
 * for (const entry of await store.byTransaction(txId)) if (entry.entityType === 'Order') entry.snapshot.total;
 * ```
 */
export type AnyHistoryEntry<M extends EntityTypes = Record<string, unknown>> = {
  [K in EntityTypeOf<M>]: HistoryEntry<SnapshotOf<M, K>> & { entityType: K };
}[EntityTypeOf<M>];

/**
 * Reads history back. Every built-in store implements it; `M` types the snapshots by entity
 * type (see {@link EntityTypes}).
 *
 * ```ts
 * const versions = await store.list('Order', '42', { fromVersion: 2 });
 * ```
 */
export interface HistoryReader<M extends EntityTypes = Record<string, unknown>> {
  /** Entries in ascending version order. */
  list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: ListOptions,
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]>;
  at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined>;
  /**
   * The entry in force at `time`: the one with the latest timestamp not after `time` (ties: the
   * highest version), or `undefined` when every entry is later. This is the highest version not
   * after `time` whenever timestamps rise with versions, as they do for every entry the library
   * writes; the built-in stores answer it from their (entity type, id, timestamp) index, in the
   * same time however long the history.
   */
  asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined>;
  /** With `{ session }`, reads through that session, inside its transaction (built-in stores). */
  latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: ReadOptions,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined>;
  /** Cursor pagination by version, forwards or backwards (built-in stores; see `PageOptions`). */
  page?<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts?: PageOptions,
  ): Promise<HistoryPage<SnapshotOf<M, K>>>;
  /** Every entry written in one transaction, across entity types, by entity type, id and version (built-in stores). */
  byTransaction?(txId: string): Promise<AnyHistoryEntry<M>[]>;
  /**
   * The entity types the store holds history for, each once, in code point order (built-in
   * stores). For listing what a store holds (the CLI's `types`, the viewer), not for a hot path:
   * the SQL stores read it from the primary key's index.
   */
  entityTypes?(): Promise<string[]>;
  /**
   * The ids of one entity type that have history, each once, in code point order, filtered and
   * paged by `opts` (built-in stores; see {@link EntityIdOptions}).
   */
  entityIds?(entityType: string, opts?: EntityIdOptions): Promise<string[]>;
  /** Each version with its field-level changes from the previous one, oldest first (built-in stores). */
  changes?<K extends EntityTypeOf<M>>(entityType: K, entityId: string): AsyncIterable<VersionChanges<SnapshotOf<M, K>>>;
  /**
   * The entity's chain head (built-in stores), `undefined` when it has none (or the heads table
   * does not exist); see {@link ChainHead}. `verifyHistory` uses it to detect deleted newest entries.
   */
  head?(entityType: EntityTypeOf<M>, entityId: string): Promise<ChainHead | undefined>;
}
