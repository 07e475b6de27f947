import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { type HistoryEntry, TransactionStateError, VersionConflictError } from '../../src/index.js';
import {
  createPgAdapter,
  createPgliteAdapter,
  PostgresHistoryStore,
  pgAdapter,
  pgliteAdapter,
} from '../../src/postgres/index.js';
import { sqliteAdapter } from '../../src/sqlite/index.js';
import { pgPoolAdapter } from '../../src/transactions/pool.js';
import { findAdapter } from '../../src/transactions/registry.js';

/** A pg client double: tracks the transaction status the way node-postgres reports it. */
class FakePgClient {
  status: 'I' | 'T' | 'E' = 'I';
  readonly sent: string[] = [];
  readonly failures = new Map<string, Error>();

  getTransactionStatus(): string {
    return this.status;
  }

  async query(text: string): Promise<unknown> {
    this.sent.push(text);
    const failure = this.failures.get(text);
    if (failure) {
      if (text.startsWith('BEGIN')) this.status = 'E';
      throw failure;
    }
    if (text.startsWith('BEGIN')) {
      this.status = 'T';
      return [
        { command: 'BEGIN', rows: [] },
        { command: 'SELECT', rows: [{ id: '4242' }] },
      ];
    }
    if (text === 'COMMIT' || text === 'ROLLBACK') {
      const command = text === 'COMMIT' && this.status === 'E' ? 'ROLLBACK' : text;
      this.status = 'I';
      return { command, rows: [] };
    }
    return { command: 'SELECT', rows: [] };
  }
}

function sqlError(code: string): Error {
  return Object.assign(new Error(`error ${code}`), { code, severity: 'ERROR' });
}

const fakePGlite = {
  query: async () => ({ rows: [] }),
  exec: async () => [],
  transaction: async () => undefined,
  isInTransaction: () => false,
};
const fakePGliteTx = {
  query: async () => ({ rows: [] }),
  exec: async () => [],
  rollback: async () => {},
  closed: false,
};

describe('recognising sessions structurally', () => {
  it('takes a node-postgres Client for the pg adapter, and a Pool for the pool adapter, which runs the call on a client', () => {
    const client = new pg.Client();
    const pool = new pg.Pool();
    expect(pgAdapter.matches(client)).toBe(true);
    expect(findAdapter(client)?.name).toBe('pg');
    expect(pgAdapter.matches(pool)).toBe(false);
    expect(findAdapter(pool)?.name).toBe(pgPoolAdapter.name);
    void pool.end();
  });

  it('takes a PGlite instance and the tx of its transaction() for the PGlite adapter', () => {
    expect(findAdapter(fakePGlite)?.name).toBe('pglite');
    expect(findAdapter(fakePGliteTx)?.name).toBe('pglite');
    expect(pgAdapter.matches(fakePGlite)).toBe(false);
    expect(pgliteAdapter.matches(new pg.Client())).toBe(false);
  });

  it('takes a better-sqlite3 Database for the SQLite adapter only', () => {
    const db = new Database(':memory:');
    expect(findAdapter(db)?.name).toBe('better-sqlite3');
    expect(pgAdapter.matches(db)).toBe(false);
    expect(pgliteAdapter.matches(db)).toBe(false);
    expect(sqliteAdapter.matches(new pg.Client())).toBe(false);
    db.close();
  });

  it('treats a PGlite tx as a transaction the caller owns while it is open', () => {
    expect(pgliteAdapter.isActive(fakePGliteTx)).toBe(true);
    expect(pgliteAdapter.isActive({ ...fakePGliteTx, closed: true })).toBe(false);
  });

  it('recognises a client of pg before 8.21 and tells the user to upgrade instead of guessing its status', () => {
    const oldClient = { query: async () => ({ rows: [] }), connect: async () => {}, connection: {}, processID: 7 };
    expect(findAdapter(oldClient)?.name).toBe('pg');
    expect(() => pgAdapter.isActive(oldClient)).toThrow(TransactionStateError);
    expect(() => pgAdapter.isActive(oldClient)).toThrow(/pg 8\.21/);
  });

  it('refuses a pg client that reports no status (not connected, or pg-native) rather than risk committing the caller’s transaction', () => {
    const unconnected = new pg.Client();
    expect(unconnected.getTransactionStatus()).toBeNull();
    const error = (() => {
      try {
        pgAdapter.isActive(unconnected);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(TransactionStateError);
    expect(error).toMatchObject({ code: 'TRANSACTION_STATUS_UNKNOWN' });
    expect((error as Error).message).toMatch(/pool\.connect\(\)/);
  });

  it('treats a pg client in a transaction, or in a failed one, as active', () => {
    const client = new FakePgClient();
    expect(pgAdapter.isActive(client)).toBe(false);
    client.status = 'T';
    expect(pgAdapter.isActive(client)).toBe(true);
    client.status = 'E';
    expect(pgAdapter.isActive(client)).toBe(true);
  });
});

describe('classifying PostgreSQL errors', () => {
  for (const adapter of [pgAdapter, pgliteAdapter]) {
    it(`${adapter.name}: a unique violation (23505) is a conflict, nothing else is`, () => {
      expect(adapter.isConflict?.(sqlError('23505'))).toBe(true);
      for (const other of [sqlError('23503'), sqlError('40001'), new Error('23505'), { code: 23505 }, null, 'x']) {
        expect(adapter.isConflict?.(other)).toBe(false);
      }
    });

    it(`${adapter.name}: serialization failures (40001) and deadlocks (40P01) are transient, nothing else is`, () => {
      expect(adapter.isTransient?.(sqlError('40001'))).toBe(true);
      expect(adapter.isTransient?.(sqlError('40P01'))).toBe(true);
      for (const other of [sqlError('23505'), sqlError('57014'), { code: 'ECONNRESET' }, undefined]) {
        expect(adapter.isTransient?.(other)).toBe(false);
      }
    });
  }
});

describe('running a transaction on a pg client', () => {
  it('begins and reads the transaction id in one query, exposes it during the work, and commits', async () => {
    const client = new FakePgClient();
    let during: string | undefined;

    const result = await pgAdapter.run(client, async () => {
      during = pgAdapter.transactionId?.(client);
      return 'done';
    });

    expect(result).toBe('done');
    expect(client.sent).toEqual(['BEGIN; SELECT pg_current_xact_id()::text AS id', 'COMMIT']);
    expect(during).toBe('4242');
    expect(pgAdapter.transactionId?.(client)).toBeUndefined();
  });

  it('rolls back when the work fails and rethrows the work’s error, even when ROLLBACK fails too', async () => {
    const client = new FakePgClient();
    const failure = new Error('work failed');
    client.failures.set('ROLLBACK', new Error('connection lost'));

    await expect(pgAdapter.run(client, () => Promise.reject(failure))).rejects.toBe(failure);

    expect(client.sent.at(-1)).toBe('ROLLBACK');
    expect(pgAdapter.transactionId?.(client)).toBeUndefined();
  });

  it('rolls back a begin whose id query failed, and rethrows that failure', async () => {
    const client = new FakePgClient();
    const failure = sqlError('42883');
    client.failures.set('BEGIN; SELECT pg_current_xact_id()::text AS id', failure);

    await expect(pgAdapter.run(client, async () => 'never')).rejects.toBe(failure);

    expect(client.sent).toEqual(['BEGIN; SELECT pg_current_xact_id()::text AS id', 'ROLLBACK']);
    expect(client.status).toBe('I');
  });

  it('reports a transaction that failed inside the work as TransactionStateError instead of committing', async () => {
    const client = new FakePgClient();

    const error = await pgAdapter
      .run(client, async () => {
        client.status = 'E';
      })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionStateError);
    expect(error).toMatchObject({ code: 'TRANSACTION_ABORTED', adapter: 'pg' });
    expect(client.sent.at(-1)).toBe('ROLLBACK');
  });

  it('reports a transaction the work ended itself as TransactionStateError', async () => {
    const client = new FakePgClient();

    const error = await pgAdapter
      .run(client, async () => {
        await client.query('COMMIT');
      })
      .catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'TRANSACTION_CLOSED' });
  });

  it('begins with the isolation level it was created with', async () => {
    const client = new FakePgClient();
    const serializable = createPgAdapter({ isolation: 'serializable' });

    await serializable.run(client, async () => undefined);

    expect(serializable.name).toBe('pg (serializable)');
    expect(client.sent[0]).toBe('BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT pg_current_xact_id()::text AS id');
  });

  it('rejects an unknown isolation level when the adapter is created', () => {
    expect(() => createPgAdapter({ isolation: 'snapshot' as never })).toThrow(/read committed/);
    expect(() => createPgliteAdapter({ isolation: 'chaos' as never })).toThrow(TypeError);
  });

  it("with transactionId: 'random' begins with a plain BEGIN and leaves the txId to the call", async () => {
    const client = new FakePgClient();
    const random = createPgAdapter({ transactionId: 'random' });
    let during: string | undefined = 'unset';

    await random.run(client, async () => {
      during = random.transactionId?.(client);
    });

    expect(client.sent).toEqual(['BEGIN', 'COMMIT']);
    expect(during).toBeUndefined();
  });

  it("with transactionId: 'random' and an isolation level begins with BEGIN ISOLATION LEVEL alone", async () => {
    const client = new FakePgClient();

    await createPgAdapter({ transactionId: 'random', isolation: 'repeatable read' }).run(client, async () => undefined);

    expect(client.sent).toEqual(['BEGIN ISOLATION LEVEL REPEATABLE READ', 'COMMIT']);
  });

  it("with transactionId: 'database', the default, reads the transaction id in the BEGIN query", async () => {
    const client = new FakePgClient();

    await createPgAdapter({ transactionId: 'database' }).run(client, async () => undefined);

    expect(client.sent[0]).toBe('BEGIN; SELECT pg_current_xact_id()::text AS id');
  });

  it('rejects an unknown transactionId source when the adapter is created', () => {
    expect(() => createPgAdapter({ transactionId: 'uuid' as never })).toThrow(/'database' or 'random'/);
    expect(() => createPgliteAdapter({ transactionId: 'xid' as never })).toThrow(TypeError);
  });
});

describe('PostgresHistoryStore without a database', () => {
  const entry: HistoryEntry = {
    entityType: 'Order',
    entityId: 'o1',
    version: 2,
    op: 'update',
    timestamp: new Date(0),
    snapshot: {},
  };

  it('rejects a table name that is not a plain or schema-qualified identifier', () => {
    const connection = { query: async () => ({ rows: [] }) };
    for (const table of ['history; DROP TABLE orders', 'a.b.c', '1history', 'his-tory', '', 'x'.repeat(64)]) {
      expect(() => new PostgresHistoryStore(connection, { table }), table).toThrow(TypeError);
    }
    expect(new PostgresHistoryStore(connection).table).toBe('entity_history');
    expect(new PostgresHistoryStore(connection, { table: 'audit.Order_History' }).table).toBe('audit.Order_History');
  });

  it('rejects something that cannot query as its connection', () => {
    expect(() => new PostgresHistoryStore({} as never)).toThrow(/Pool, Client or PoolClient, or a PGlite/);
  });

  it('quotes the table and keeps a derived index name within 63 characters', async () => {
    const sent: string[] = [];
    const table = `audit.${'h'.repeat(63)}`;
    const store = new PostgresHistoryStore(
      {
        query: async (text: string) => {
          sent.push(text);
          return { rows: [] };
        },
      },
      { table },
    );

    await store.ensureSchema();

    expect(sent[0]).toContain(`"audit"."${'h'.repeat(63)}"`);
    const indexes = sent.flatMap((text) => /CREATE INDEX IF NOT EXISTS "([^"]+)"/.exec(text)?.[1] ?? []);
    expect(indexes).toHaveLength(2);
    for (const index of indexes) expect(index.length).toBeLessThanOrEqual(63);
    expect(indexes[0]).toMatch(/_entity_time_idx$/);
    expect(indexes[1]).toMatch(/_tx_idx$/);
  });

  it('turns a duplicate version into VersionConflictError when it writes without a session', async () => {
    const duplicate = sqlError('23505');
    const store = new PostgresHistoryStore({ query: () => Promise.reject(duplicate) });

    const error = await store.save(entry).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ entityType: 'Order', entityId: 'o1', expectedVersion: 1 });
    expect((error as Error).cause).toBe(duplicate);
  });

  it('leaves a duplicate version as the driver’s error when it writes through a session, for the call to map', async () => {
    const duplicate = sqlError('23505');
    const store = new PostgresHistoryStore({ query: async () => ({ rows: [] }) });

    await expect(store.save(entry, { query: () => Promise.reject(duplicate) })).rejects.toBe(duplicate);
  });

  it('rejects an invalid Date for asOf', async () => {
    const store = new PostgresHistoryStore({ query: async () => ({ rows: [] }) });
    await expect(store.asOf('Order', 'o1', new Date(Number.NaN))).rejects.toThrow(TypeError);
  });
});
