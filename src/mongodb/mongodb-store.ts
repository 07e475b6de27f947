import { headOf } from '../history/chain.js';
import { assertStorable, bsonExact, decodeJson, encodeJson } from '../history/codec.js';
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
  ReadOptions,
  SnapshotOf,
} from '../history/entry.js';
import { assertIdentifier } from '../history/identifier.js';
import { idBounds, typedAs } from '../history/reader.js';
import { HistoryStoreBase, versionTaken } from '../history/store-base.js';
import { type MongoSessionLike, mongodbAdapter } from '../transactions/mongodb.js';

/** A history entry as stored: the entry's own fields, plus the `_id` MongoDB adds. */
type HistoryDocument = Record<string, unknown>;

type SortSpec = Readonly<Record<string, 1 | -1>>;

interface MongoFindCursorLike {
  toArray(): Promise<HistoryDocument[]>;
}

/** The few `Collection` methods the store calls; a driver `Collection` satisfies it. */
interface MongoCollectionLike {
  insertOne(document: HistoryDocument, options?: { session?: MongoSessionLike }): Promise<unknown>;
  find(
    filter: HistoryDocument,
    options?: {
      sort?: SortSpec;
      limit?: number;
      projection?: Readonly<Record<string, 0 | 1>>;
      session?: MongoSessionLike;
    },
  ): MongoFindCursorLike;
  aggregate(pipeline: HistoryDocument[]): MongoFindCursorLike;
  createIndex(keys: SortSpec, options?: { name?: string; unique?: boolean; sparse?: boolean }): Promise<string>;
  updateOne(
    filter: HistoryDocument,
    update: HistoryDocument,
    options?: { upsert?: boolean; session?: MongoSessionLike },
  ): Promise<unknown>;
}

/**
 * The part of the MongoDB driver's `Db` the store uses, declared here so that the library never
 * imports `mongodb`. A driver `Db` satisfies it.
 *
 * ```ts
 * const db: MongoDbLike = client.db('shop');
 * ```
 */
export interface MongoDbLike {
  collection(name: string): MongoCollectionLike;
}

/**
 * Options of {@link MongoHistoryStore}.
 *
 * ```ts
 * new MongoHistoryStore(db, { collection: 'order_history' });
 * ```
 */
export interface MongoHistoryStoreOptions {
  /** The collection entries are kept in; letters, digits and underscores. Default `entity_history`. */
  readonly collection?: string;
}

const DEFAULT_COLLECTION = 'entity_history';
const VERSION_INDEX = 'entity_history_version_key';
/**
 * (entityType, entityId, timestamp, version): serves `asOf`'s sort, version tie-break included,
 * without an in-memory sort. Collections made by earlier versions also hold the old
 * `entity_history_timestamp` index, which nothing reads any more and may be dropped.
 */
const TIMESTAMP_INDEX = 'entity_history_timestamp_version';
const TX_INDEX = 'entity_history_tx';
const HEAD_INDEX = 'entity_history_heads_key';
const WITHOUT_ID = Object.freeze({ _id: 0 as const });
/**
 * A snapshot or metadata BSON cannot hold exactly (a string or key with a lone surrogate, a key
 * with a NUL, a leading `$` or a dot, an invalid Date; see `bsonExact`) is stored as `encodeJson`
 * text in `snapshotJson` / `metadataJson` instead, and read back from there.
 */
const JSON_FIELDS = [
  ['snapshot', 'snapshotJson'],
  ['metadata', 'metadataJson'],
] as const;

/**
 * History kept in a MongoDB collection, one document per entity version. Entries written
 * through `save(entry, session)` join the session's transaction; timestamps and Dates inside
 * snapshots stay native BSON dates. A snapshot BSON cannot hold exactly (lone surrogates, keys
 * starting with `$` or holding a dot or NUL, invalid Dates) is kept as JSON text in
 * `snapshotJson` instead, so what is read back is what was written. A unique index on (entityType, entityId, version) turns a
 * second writer of the same version into a `VersionConflictError`.
 *
 * ```ts
 * import { MongoHistoryStore } from 'event-history/mongodb';
 *
 * const history = new MongoHistoryStore(client.db('shop'));
 * await history.ensureSchema();
 *
 * @Versioned()
 * @HistoryTracked(history)
 * class OrderService { ... }
 *
 * const versions = await history.list('Order', '42');
 * ```
 */
export class MongoHistoryStore<M extends EntityTypes = Record<string, unknown>>
  extends HistoryStoreBase<M>
  implements HistoryWriter<MongoSessionLike>, HistoryReader<M>
{
  /** The collection's name. */
  readonly collectionName: string;
  readonly #collection: MongoCollectionLike;
  /** The chain heads: `<collection>_heads`, one document per chained entity. */
  readonly #heads: MongoCollectionLike;

  constructor(db: MongoDbLike, options: MongoHistoryStoreOptions = {}) {
    super();
    this.collectionName = assertIdentifier(options.collection ?? DEFAULT_COLLECTION, 'MongoHistoryStore collection');
    this.#collection = db.collection(this.collectionName);
    this.#heads = db.collection(`${this.collectionName}_heads`);
  }

  /**
   * Creates the collection's indexes: the unique (entityType, entityId, version) key, an
   * (entityType, entityId, timestamp, version) index for `asOf` and a sparse `txId` index for
   * `byTransaction`, and the unique (entityType, entityId) index of the chain heads collection
   * `<collection>_heads`. Safe to call on every start, and on a collection an earlier version made.
   *
   * ```ts
   * await new MongoHistoryStore(db).ensureSchema();
   * ```
   */
  async ensureSchema(): Promise<void> {
    await this.#collection.createIndex(
      { entityType: 1, entityId: 1, version: 1 },
      { name: VERSION_INDEX, unique: true },
    );
    await this.#collection.createIndex(
      { entityType: 1, entityId: 1, timestamp: 1, version: 1 },
      { name: TIMESTAMP_INDEX },
    );
    await this.#collection.createIndex({ txId: 1 }, { name: TX_INDEX, sparse: true });
    await this.#heads.createIndex({ entityType: 1, entityId: 1 }, { name: HEAD_INDEX, unique: true });
  }

  /**
   * Inserts one entry, inside the session's transaction when a session is given. Without a
   * session, a version the collection already holds is a `VersionConflictError`; with one, the
   * driver's duplicate-key error is left for the transaction to report (as the same error).
   * A chained entry's head (see `ChainHead`) is upserted right after, through the same session
   * and so in the same transaction.
   *
   * ```ts
   * await history.save(entry, session);
   * ```
   */
  async save(entry: HistoryEntry, session?: MongoSessionLike): Promise<void> {
    assertStorable(entry);
    // insertOne adds `_id` to the document it is given; the caller's entry stays untouched.
    const document: HistoryDocument = { ...entry };
    for (const [field, text] of JSON_FIELDS) {
      if (field in document && !bsonExact(document[field])) {
        document[text] = encodeJson(document[field]);
        delete document[field];
      }
    }
    try {
      await (session === undefined
        ? this.#collection.insertOne(document)
        : this.#collection.insertOne(document, { session }));
    } catch (error) {
      if (session === undefined && mongodbAdapter.isConflict?.(error)) {
        throw versionTaken(entry, error);
      }
      throw error;
    }
    if (entry.hash !== undefined) await this.#saveHead(entry, session);
  }

  /** Upserts the chain head a chained entry carries, in the same session (and transaction) as its insert. */
  async #saveHead(entry: HistoryEntry, session: MongoSessionLike | undefined): Promise<void> {
    const { entityType, entityId, version, hash, mac } = headOf(entry) as ChainHead;
    const update = { $set: { version, hash, mac: mac ?? null } };
    await this.#heads.updateOne(
      { entityType, entityId },
      update,
      session === undefined ? { upsert: true } : { upsert: true, session },
    );
  }

  /**
   * The entity's chain head (see `ChainHead`), or `undefined` when it has none.
   *
   * ```ts
   * const head = await history.head('Order', '42'); // { version: 3, hash: '…' }
   * ```
   */
  async head(entityType: EntityTypeOf<M>, entityId: string): Promise<ChainHead | undefined> {
    const [document] = await this.#heads.find({ entityType, entityId }, { projection: WITHOUT_ID, limit: 1 }).toArray();
    if (document === undefined) return undefined;
    const head = {
      entityType: String(document.entityType),
      entityId: String(document.entityId),
      version: Number(document.version),
      hash: String(document.hash),
    };
    return typeof document.mac === 'string' ? { ...head, mac: document.mac } : head;
  }

  /**
   * Entries of one entity in ascending version order, optionally bounded (inclusive) and limited.
   *
   * ```ts
   * await history.list('Order', '42', { fromVersion: 2, limit: 10 });
   * ```
   */
  async list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ListOptions = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]> {
    const version: Record<string, number> = {};
    if (opts.fromVersion !== undefined) version.$gte = opts.fromVersion;
    if (opts.toVersion !== undefined) version.$lte = opts.toVersion;
    const filter: HistoryDocument = { entityType, entityId };
    if (Object.keys(version).length > 0) filter.version = version;
    if (opts.limit !== undefined && opts.limit <= 0) return [];
    return typedAs(await this.#find(filter, { version: opts.order === 'desc' ? -1 : 1 }, opts.limit));
  }

  /**
   * Every entry one transaction wrote, across entity types, ordered by entity type, id and
   * version. Served by the `txId` index.
   *
   * ```ts
   * const together = await history.byTransaction(entry.txId);
   * ```
   */
  async byTransaction(txId: string): Promise<AnyHistoryEntry<M>[]> {
    return typedAs(await this.#find({ txId }, { entityType: 1, entityId: 1, version: 1 }, undefined));
  }

  /**
   * The entity types with history, each once, in code point order (MongoDB's binary comparison
   * of strings).
   *
   * ```ts
   * const types = await history.entityTypes(); // ['Invoice', 'Order']
   * ```
   */
  async entityTypes(): Promise<string[]> {
    return this.#distinct('$entityType', {}, undefined);
  }

  /**
   * The ids of `entityType` with history, each once, in code point order, filtered by prefix and
   * paged by `after` and `limit` (see `EntityIdOptions`); an anchored prefix match, which the
   * (entityType, entityId, version) index serves.
   *
   * ```ts
   * const ids = await history.entityIds('Order', { prefix: 'A-', limit: 20 });
   * ```
   */
  async entityIds(entityType: string, opts: EntityIdOptions = {}): Promise<string[]> {
    const { after, prefix, limit } = idBounds(opts);
    if (limit === 0) return [];
    const id: HistoryDocument = {};
    if (after !== null) id.$gt = after;
    if (prefix !== '') id.$regex = `^${prefix.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}`;
    return this.#distinct(
      '$entityId',
      Object.keys(id).length > 0 ? { entityType, entityId: id } : { entityType },
      limit,
    );
  }

  async #distinct(field: string, match: HistoryDocument, limit: number | undefined): Promise<string[]> {
    const pipeline: HistoryDocument[] = [{ $match: match }, { $group: { _id: field } }, { $sort: { _id: 1 } }];
    if (limit !== undefined) pipeline.push({ $limit: limit });
    const groups = await this.#collection.aggregate(pipeline).toArray();
    return groups.map((group) => String(group._id));
  }

  /**
   * The entry of one version, or `undefined`.
   *
   * ```ts
   * const third = await history.at('Order', '42', 3);
   * ```
   */
  async at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const [entry] = await this.#find({ entityType, entityId, version }, { version: 1 }, 1);
    return typedAs(entry);
  }

  /**
   * The entry in force at `time`: the one with the latest timestamp not after `time` (ties: the
   * highest version), read from the (entity type, id, timestamp, version) index in constant time however
   * long the history. The highest version not after `time` whenever timestamps rise with
   * versions, as they do for entries the library writes.
   *
   * ```ts
   * const atNewYear = await history.asOf('Order', '42', new Date('2026-01-01'));
   * ```
   */
  async asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const [entry] = await this.#find(
      { entityType, entityId, timestamp: { $lte: time } },
      { timestamp: -1, version: -1 },
      1,
    );
    return typedAs(entry);
  }

  /**
   * The entry of the highest version, or `undefined` when the entity has no history. With
   * `{ session }`, read in that session's transaction (what `onUnchanged: 'skip'` and
   * `chain: true` use).
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ReadOptions<MongoSessionLike> = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const [entry] = await this.#find({ entityType, entityId }, { version: -1 }, 1, opts.session);
    return typedAs(entry);
  }

  async #find(
    filter: HistoryDocument,
    sort: SortSpec,
    limit: number | undefined,
    session?: MongoSessionLike,
  ): Promise<HistoryEntry[]> {
    const options = {
      sort,
      projection: WITHOUT_ID,
      ...(limit === undefined ? {} : { limit }),
      ...(session == null ? {} : { session }),
    };
    const documents = await this.#collection.find(filter, options).toArray();
    return documents.map(toEntry);
  }
}

function toEntry(document: HistoryDocument): HistoryEntry {
  const { _id, ...entry } = document;
  for (const [field, text] of JSON_FIELDS) {
    if (typeof entry[text] === 'string') {
      entry[field] = decodeJson(entry[text]);
      delete entry[text];
    }
  }
  return entry as unknown as HistoryEntry;
}
