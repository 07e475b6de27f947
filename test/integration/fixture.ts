import type { HistoryReader, HistoryWriter } from '../../src/index.js';

/** The row the behaviour suite's order service stores, in every database. */
export interface OrderRow {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

/** A built-in history store as the suite uses it. */
export type SuiteStore<S> = HistoryWriter<S> &
  HistoryReader &
  Required<Pick<HistoryReader, 'page' | 'byTransaction' | 'changes' | 'entityTypes' | 'entityIds'>> & {
    ensureSchema(): Promise<void>;
  };

/**
 * One database (and driver) the shared behaviour suite runs against. Each fixture owns a
 * fresh `orders` table (or collection) and history table per `open()`, named uniquely so that
 * suites running in parallel files do not meet.
 */
export interface DatabaseFixture<S = unknown> {
  readonly name: string;
  /** `undefined` when the fixture can run here; otherwise why not (e.g. `DATABASE_URL is not set`). */
  readonly unavailable: string | undefined;
  /** Whether two sessions can write concurrently (false for in-memory SQLite: one connection). */
  readonly concurrentSessions: boolean;
  open(): Promise<void>;
  close(): Promise<void>;
  /** The history store under test, built on the fixture's connection, schema ensured by `open()`. */
  readonly store: SuiteStore<S>;
  /** A session the decorated service writes through: a dedicated connection or client session. */
  session(): Promise<S>;
  release(session: S): Promise<void>;
  /** The user's own repository code, written with the raw driver. Results are the driver's raw results. */
  insertOrder(session: S, order: OrderRow): Promise<unknown>;
  /** Guarded by `WHERE version = expectedVersion` when one is given; unguarded otherwise. */
  updateOrder(session: S, order: OrderRow, expectedVersion: number | undefined): Promise<unknown>;
  deleteOrder(session: S, order: OrderRow, expectedVersion: number | undefined): Promise<unknown>;
  /** Reads through a connection other than any session, outside any transaction. */
  readOrder(id: string): Promise<OrderRow | undefined>;
  /** Raw count of history rows for one entity, read through another connection. */
  countHistory(entityType: string, entityId: string): Promise<number>;
  /** A transaction the caller manages, on the session, with the driver's own API. */
  begin(session: S): Promise<void>;
  commit(session: S): Promise<void>;
  rollback(session: S): Promise<void>;
  /** The session is not inside a transaction (idle, usable). */
  isIdle(session: S): Promise<boolean>;
  /** Edits the stored history directly, with the database's own SQL or commands, as an intruder would. */
  readonly tamper: HistoryTamper;
}

/** Direct edits of stored history rows (documents), bypassing the store, for the tamper-evidence tests. */
export interface HistoryTamper {
  /** Sets `snapshot.total` of one stored entry. */
  setTotal(entityType: string, entityId: string, version: number, total: number): Promise<void>;
  /** Deletes one stored entry. */
  remove(entityType: string, entityId: string, version: number): Promise<void>;
  /** Inserts an entry by hand, without hash: snapshot `{ id: entityId, total }`, op `update`. */
  insert(entityType: string, entityId: string, version: number, total: number): Promise<void>;
}

/**
 * Whether suites that need a server must run: `REQUIRE_DATABASES=1` (as CI sets) turns a
 * missing server into a failure instead of a skip.
 */
export const REQUIRE_DATABASES = process.env.REQUIRE_DATABASES === '1';
