import type { HistoryEntry, TransactionAdapter } from '../../src/index.js';

/** A row with the revision it was last committed at, for optimistic checks at commit. */
interface Stored {
  readonly row: Record<string, unknown>;
  readonly revision: number;
}

type Tables = Map<string, Map<string, Stored>>;

export class FakeDbError extends Error {
  constructor(
    readonly code: 'DUPLICATE_KEY' | 'WRITE_CONFLICT' | 'TRANSIENT' | 'BROKEN',
    message: string,
  ) {
    super(message);
  }
}

function cloneTables(tables: Tables): Tables {
  return new Map([...tables].map(([name, rows]) => [name, new Map(rows)]));
}

/**
 * A tiny in-memory database with real transactions: each session's transaction works on its
 * own copy and commit checks that no row it wrote was committed by someone else meanwhile.
 */
export class FakeDb {
  tables: Tables = new Map();
  #revision = 0;

  session(): FakeSession {
    return new FakeSession(this);
  }

  rows(table: string): Record<string, unknown>[] {
    return [...(this.tables.get(table)?.values() ?? [])].map((stored) => structuredClone(stored.row));
  }

  row(table: string, id: string): Record<string, unknown> | undefined {
    const stored = this.tables.get(table)?.get(id);
    return stored && structuredClone(stored.row);
  }

  /** @internal */
  nextRevision(): number {
    this.#revision += 1;
    return this.#revision;
  }
}

export class FakeSession {
  begins = 0;
  commits = 0;
  rollbacks = 0;
  /** Errors thrown by the next commits, one each. */
  readonly commitFailures: Error[] = [];
  #tx: { tables: Tables; writes: Map<string, number | undefined>; number: number } | undefined;
  #txNumber = 0;

  constructor(readonly db: FakeDb) {}

  get inTransaction(): boolean {
    return this.#tx !== undefined;
  }

  get txNumber(): number | undefined {
    return this.#tx?.number;
  }

  async begin(): Promise<void> {
    if (this.#tx) throw new FakeDbError('BROKEN', 'transaction already started');
    this.begins += 1;
    this.#txNumber += 1;
    this.#tx = { tables: cloneTables(this.db.tables), writes: new Map(), number: this.#txNumber };
  }

  async commit(): Promise<void> {
    const tx = this.#tx;
    if (!tx) throw new FakeDbError('BROKEN', 'no transaction to commit');
    this.#tx = undefined;
    const failure = this.commitFailures.shift();
    if (failure) throw failure;
    for (const [key, baseRevision] of tx.writes) {
      const [table, id] = key.split('\u0000') as [string, string];
      const now = this.db.tables.get(table)?.get(id)?.revision;
      if (now !== baseRevision) {
        throw new FakeDbError(
          baseRevision === undefined ? 'DUPLICATE_KEY' : 'WRITE_CONFLICT',
          `${table} ${id} changed concurrently`,
        );
      }
    }
    for (const key of tx.writes.keys()) {
      const [table, id] = key.split('\u0000') as [string, string];
      const stored = tx.tables.get(table)?.get(id);
      if (!stored) continue;
      const rows = this.db.tables.get(table) ?? new Map<string, Stored>();
      this.db.tables.set(table, rows);
      rows.set(id, { row: stored.row, revision: this.db.nextRevision() });
    }
    this.commits += 1;
  }

  async rollback(): Promise<void> {
    if (!this.#tx) throw new FakeDbError('BROKEN', 'no transaction to roll back');
    this.#tx = undefined;
    this.#savepoints.length = 0;
    this.rollbacks += 1;
  }

  /** Savepoints taken, rolled back to and released, as a SQL database counts them. */
  readonly savepointCounts = { taken: 0, rolledBack: 0, released: 0 };
  readonly #savepoints: { tables: Tables; writes: Map<string, number | undefined> }[] = [];

  async savepoint(): Promise<void> {
    const tx = this.#tx;
    if (!tx) throw new FakeDbError('BROKEN', 'SAVEPOINT outside a transaction');
    this.savepointCounts.taken += 1;
    this.#savepoints.push({ tables: cloneTables(tx.tables), writes: new Map(tx.writes) });
  }

  async rollbackToSavepoint(): Promise<void> {
    const tx = this.#tx;
    const saved = this.#savepoints.pop();
    if (!tx || !saved) throw new FakeDbError('BROKEN', 'no savepoint to roll back to');
    this.savepointCounts.rolledBack += 1;
    tx.tables = saved.tables;
    tx.writes = saved.writes;
  }

  async releaseSavepoint(): Promise<void> {
    if (!this.#tx || this.#savepoints.pop() === undefined) throw new FakeDbError('BROKEN', 'no savepoint to release');
    this.savepointCounts.released += 1;
  }

  async insert(table: string, id: string, row: Record<string, unknown>): Promise<void> {
    if (this.#view(table).has(id)) throw new FakeDbError('DUPLICATE_KEY', `duplicate key ${table} ${id}`);
    this.#write(table, id, row);
  }

  async update(table: string, id: string, expectedVersion: number | undefined, row: Record<string, unknown>) {
    const current = this.#view(table).get(id);
    if (!current || (expectedVersion !== undefined && current.row.version !== expectedVersion))
      return { matchedCount: 0 };
    this.#write(table, id, row);
    return { matchedCount: 1 };
  }

  async find(table: string, id: string): Promise<Record<string, unknown> | undefined> {
    const stored = this.#view(table).get(id);
    return stored && structuredClone(stored.row);
  }

  #view(table: string): Map<string, Stored> {
    const tables = this.#tx?.tables ?? this.db.tables;
    const rows = tables.get(table) ?? new Map<string, Stored>();
    tables.set(table, rows);
    return rows;
  }

  #write(table: string, id: string, row: Record<string, unknown>): void {
    const rows = this.#view(table);
    const key = `${table}\u0000${id}`;
    if (this.#tx && !this.#tx.writes.has(key)) this.#tx.writes.set(key, this.db.tables.get(table)?.get(id)?.revision);
    rows.set(id, { row: structuredClone(row), revision: this.#tx ? -1 : this.db.nextRevision() });
  }
}

export const fakeAdapter: TransactionAdapter<FakeSession> = {
  name: 'fake-db',
  matches: (session): session is FakeSession => session instanceof FakeSession,
  isActive: (session) => session.inTransaction,
  async run(session, work) {
    await session.begin();
    let result: Awaited<ReturnType<typeof work>>;
    try {
      result = await work();
    } catch (error) {
      await session.rollback();
      throw error;
    }
    await session.commit();
    return result;
  },
  async join(session, work) {
    await session.savepoint();
    let result: Awaited<ReturnType<typeof work>>;
    try {
      result = await work();
    } catch (error) {
      await session.rollbackToSavepoint();
      throw error;
    }
    await session.releaseSavepoint();
    return result;
  },
  isConflict: (error) =>
    error instanceof FakeDbError && (error.code === 'DUPLICATE_KEY' || error.code === 'WRITE_CONFLICT'),
  isTransient: (error) => error instanceof FakeDbError && error.code === 'TRANSIENT',
  transactionId: (session) => (session.txNumber === undefined ? undefined : `fake-${session.txNumber}`),
};

/** A transactional history writer: entries are rows of the `history` table, keyed by type, id and version. */
export class FakeHistoryWriter {
  saved = 0;
  /** When set, the next save inserts its row and then throws this. */
  failAfterInsert: Error | undefined;

  async save(entry: HistoryEntry, session?: FakeSession): Promise<void> {
    if (!session) throw new Error('FakeHistoryWriter needs the session');
    await session.insert('history', `${entry.entityType}/${entry.entityId}/${entry.version}`, { ...entry });
    this.saved += 1;
    const failure = this.failAfterInsert;
    this.failAfterInsert = undefined;
    if (failure) throw failure;
  }
}

export function historyRows(db: FakeDb): HistoryEntry[] {
  return (db.rows('history') as unknown as HistoryEntry[]).sort((a, b) =>
    a.entityId === b.entityId ? a.version - b.version : a.entityId.localeCompare(b.entityId),
  );
}
