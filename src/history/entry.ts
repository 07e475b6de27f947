/** What a decorated call did to the entity. */
export type HistoryOp = 'create' | 'update' | 'delete';

/**
 * One version of one entity, as written to history.
 *
 * ```ts
 * const entry: HistoryEntry<Order> = await store.at('Order', '42', 3);
 * entry.snapshot.total; // the order's total at version 3
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

/** Bounds for {@link HistoryReader.list}. Versions are inclusive. */
export interface ListOptions {
  fromVersion?: number;
  toVersion?: number;
  limit?: number;
}

/**
 * Reads history back. Every built-in store implements it.
 *
 * ```ts
 * const versions = await store.list('Order', '42', { fromVersion: 2 });
 * ```
 */
export interface HistoryReader {
  /** Entries in ascending version order. */
  list(entityType: string, entityId: string, opts?: ListOptions): Promise<HistoryEntry[]>;
  at(entityType: string, entityId: string, version: number): Promise<HistoryEntry | undefined>;
  /** The entry in force at `time`: the highest version whose timestamp is not after it. */
  asOf(entityType: string, entityId: string, time: Date): Promise<HistoryEntry | undefined>;
  latest(entityType: string, entityId: string): Promise<HistoryEntry | undefined>;
}
