import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentCall,
  HistoryTracked,
  HistoryWriteError,
  InvalidEntityError,
  registerTransactionAdapter,
  TransactionStateError,
  VersionConflictError,
  Versioned,
  verifyHistory,
  withHistoryContext,
} from '../../src/index.js';
import { createPgAdapter, PostgresHistoryStore } from '../../src/postgres/index.js';
import { Order, orderId, runBehaviourSuite } from '../integration/behaviour.js';
import type { DatabaseFixture, OrderRow } from '../integration/fixture.js';
import { suiteNeeding } from '../support/skip.js';
import { countHistory, expectIndexedReads, orderSql, postgresTamper, recording, uniqueTable } from './shared.js';

const DATABASE_URL = process.env.DATABASE_URL;

/** PostgreSQL through node-postgres: a pool, a PoolClient per session, reads through the pool. */
class PostgresFixture implements DatabaseFixture<pg.PoolClient> {
  readonly name = 'PostgreSQL (pg)';
  readonly unavailable = DATABASE_URL ? undefined : 'DATABASE_URL is not set';
  readonly concurrentSessions = true;
  readonly ordersTable = uniqueTable('orders');
  readonly historyTable = uniqueTable('history');
  readonly orders = orderSql(this.ordersTable);
  readonly tamper = postgresTamper(() => this.pool, this.historyTable);
  #pool: pg.Pool | undefined;
  #store: PostgresHistoryStore | undefined;

  get pool(): pg.Pool {
    if (!this.#pool) throw new Error('the PostgreSQL fixture is not open');
    return this.#pool;
  }

  get store(): PostgresHistoryStore {
    if (!this.#store) throw new Error('the PostgreSQL fixture is not open');
    return this.#store;
  }

  async open(): Promise<void> {
    this.#pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
    await this.#pool.query(this.orders.create);
    this.#store = new PostgresHistoryStore(this.#pool, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = this.#store = undefined;
    if (!pool) return;
    try {
      await pool.query(`DROP TABLE IF EXISTS ${this.ordersTable}, ${this.historyTable}`);
    } finally {
      await pool.end();
    }
  }

  session(): Promise<pg.PoolClient> {
    return this.pool.connect();
  }

  async release(session: pg.PoolClient): Promise<void> {
    session.release();
  }

  insertOrder = (session: pg.PoolClient, order: OrderRow) => this.orders.insert(session, order);
  updateOrder = (session: pg.PoolClient, order: OrderRow, expected: number | undefined) =>
    this.orders.update(session, order, expected);
  deleteOrder = (session: pg.PoolClient, order: OrderRow, expected: number | undefined) =>
    this.orders.remove(session, order, expected);
  readOrder = (id: string) => this.orders.read(this.pool, id);
  countHistory = (entityType: string, entityId: string) =>
    countHistory(this.pool, this.historyTable, entityType, entityId);

  async begin(session: pg.PoolClient): Promise<void> {
    await session.query('BEGIN');
  }

  async commit(session: pg.PoolClient): Promise<void> {
    await session.query('COMMIT');
  }

  async rollback(session: pg.PoolClient): Promise<void> {
    await session.query('ROLLBACK');
  }

  async isIdle(session: pg.PoolClient): Promise<boolean> {
    if (session.getTransactionStatus() !== 'I') return false;
    return (await session.query('SELECT 1 AS ok')).rows[0]?.ok === 1;
  }
}

runBehaviourSuite(new PostgresFixture());

const specifics = suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set');

specifics('PostgreSQL specifics', () => {
  let pool: pg.Pool;
  const tables: string[] = [];

  beforeAll(() => {
    if (!DATABASE_URL) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
  });

  afterAll(async () => {
    if (!pool) return;
    try {
      if (tables.length > 0) await pool.query(`DROP TABLE IF EXISTS ${tables.join(', ')} CASCADE`);
    } finally {
      await pool.end();
    }
  });

  async function setup() {
    const ordersTable = uniqueTable('orders');
    const historyTable = uniqueTable('history');
    tables.push(ordersTable, historyTable);
    const orders = orderSql(ordersTable);
    await pool.query(orders.create);
    const store = new PostgresHistoryStore(pool, { table: historyTable });
    await store.ensureSchema();
    return { orders, ordersTable, historyTable, store };
  }

  async function withClients<R>(count: number, work: (...clients: pg.PoolClient[]) => Promise<R>): Promise<R> {
    const clients = await Promise.all(Array.from({ length: count }, () => pool.connect()));
    try {
      return await work(...clients);
    } finally {
      for (const client of clients) client.release();
    }
  }

  /** Runs `work` on a pooled client whose queries are recorded, as the server receives them. */
  function recordingClient<R>(work: (client: pg.PoolClient, sent: string[]) => Promise<R>): Promise<R> {
    return withClients(1, async (client) => {
      const query = client.query;
      const sent: string[] = [];
      client.query = ((text: unknown, ...rest: unknown[]) => {
        sent.push(typeof text === 'string' ? text : String((text as { text?: unknown }).text));
        return (query as (...args: unknown[]) => unknown).call(client, text, ...rest);
      }) as typeof client.query;
      try {
        return await work(client, sent);
      } finally {
        client.query = query;
      }
    });
  }

  it('retries a SERIALIZABLE transaction that failed with a serialization failure (40001) until it succeeds', async () => {
    const { orders, ordersTable, store } = await setup();
    const transient: string[] = [];
    const serializable = createPgAdapter({ isolation: 'serializable' });
    const unregister = registerTransactionAdapter({
      ...serializable,
      isTransient: (error: unknown) => {
        const retry = serializable.isTransient?.(error) ?? false;
        if (retry) transient.push((error as { code: string }).code);
        return retry;
      },
    });
    let arrived = 0;
    let bothRead: () => void = () => {};
    const barrier = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    let calls = 0;
    class LedgerService {
      // Write skew: each transaction reads all orders, then inserts one; SERIALIZABLE lets only one commit.
      // A retry that starts before the winner committed can fail once more, so allow a few.
      @Versioned({ retries: 10 })
      @HistoryTracked(store)
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        calls += 1;
        await client.query(`SELECT count(*) FROM ${ordersTable}`);
        if (++arrived === 2) bothRead();
        await barrier;
        await orders.insert(client, order);
      }
    }
    const ledger = new LedgerService();
    const [a, b] = [new Order(orderId(), 1), new Order(orderId(), 2)];
    try {
      await withClients(2, (first, second) =>
        Promise.all([ledger.save(a, first as pg.PoolClient), ledger.save(b, second as pg.PoolClient)]),
      );
    } finally {
      unregister();
    }

    expect(transient.length).toBeGreaterThanOrEqual(1);
    expect(new Set(transient)).toEqual(new Set(['40001']));
    expect(calls).toBe(2 + transient.length);
    expect([a.version, b.version]).toEqual([1, 1]);
    expect(await orders.read(pool, a.id)).toMatchObject({ version: 1 });
    expect(await orders.read(pool, b.id)).toMatchObject({ version: 1 });
    expect((await store.latest('Order', a.id))?.version).toBe(1);
    expect((await store.latest('Order', b.id))?.version).toBe(1);
  });

  it('gives every entry of a transaction the transaction’s own pg_current_xact_id as txId', async () => {
    const { orders, store } = await setup();
    const seen: { xact: string; txId: string | undefined }[] = [];
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        await orders.insert(client, order);
        const { rows } = await client.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
        seen.push({ xact: rows[0]?.id as string, txId: currentCall()?.txId });
      }
    }
    const order = new Order(orderId(), 1);

    await withClients(1, (client) => new OrderService().save(order, client as pg.PoolClient));

    const [call] = seen;
    expect(call?.xact).toMatch(/^\d+$/);
    expect(call?.txId).toBe(call?.xact);
    expect((await store.latest('Order', order.id))?.txId).toBe(call?.xact);
  });

  it("with createPgAdapter({ transactionId: 'random' }) registered, a call sends a plain BEGIN and records a random UUID as txId", async () => {
    const { orders, store } = await setup();
    const seen: (string | undefined)[] = [];
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        await orders.insert(client, order);
        seen.push(currentCall()?.txId);
      }
    }
    const order = new Order(orderId(), 1);
    const unregister = registerTransactionAdapter(createPgAdapter({ transactionId: 'random' }));
    let sent: string[] = [];
    try {
      sent = await recordingClient(async (client, queries) => {
        await new OrderService().save(order, client);
        return queries;
      });
    } finally {
      unregister();
    }

    // BEGIN travels with the method's first statement (see 'BEGIN travels with…' below).
    expect(sent[0]).toMatch(/^INSERT INTO orders_/);
    expect(sent.some((text) => /^BEGIN/.test(text))).toBe(false);
    // The history INSERT travels with COMMIT (see 'the history INSERT travels with COMMIT' below).
    expect(sent.at(-1)).toMatch(/^INSERT INTO .*;\nCOMMIT$/s);
    expect(sent.some((text) => text.includes('pg_current_xact_id'))).toBe(false);
    expect(seen[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((await store.latest('Order', order.id))?.txId).toBe(seen[0]);
  });

  it('runs concurrent decorated calls on one client one after the other: one failing takes no other down', async () => {
    const { orders, store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        await orders.insert(client, order);
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (order.total < 0) throw new Error(`order ${order.id} has a negative total`);
      }
    }
    const service = new OrderService();
    const batch = [new Order(orderId(), -1), new Order(orderId(), 1), new Order(orderId(), 2)];

    const results = await withClients(1, (client) =>
      Promise.allSettled(batch.map((order) => service.save(order, client as pg.PoolClient))),
    );

    expect(results.map((result) => result.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(await orders.read(pool, batch[0]?.id as string)).toBeUndefined();
    const entries = await Promise.all(batch.slice(1).map((order) => store.latest('Order', order.id)));
    expect(entries.map((entry) => entry?.version)).toEqual([1, 1]);
    expect(new Set(entries.map((entry) => entry?.txId)).size).toBe(2);
  });

  it('reports a transaction the method aborted by catching a failed statement as TransactionStateError, keeping nothing', async () => {
    const { orders } = await setup();
    class OrderService {
      @Versioned()
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        await orders.insert(client, order);
        await client.query('SELECT 1 / 0').catch(() => undefined);
      }
    }
    const order = new Order(orderId(), 1);

    await withClients(1, async (client) => {
      const error = await new OrderService().save(order, client as pg.PoolClient).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect(error).toMatchObject({ code: 'TRANSACTION_ABORTED', adapter: 'pg' });
      expect(client?.getTransactionStatus()).toBe('I');
    });
    expect(order.version).toBeUndefined();
    expect(await orders.read(pool, order.id)).toBeUndefined();
  });

  it('takes a Pool as a session: the call runs on one client of it, which it gives back', async () => {
    const { orders, store } = await setup();
    const seen: unknown[] = [];
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient): Promise<void> {
        seen.push(client);
        await orders.insert(client, order);
      }
    }
    const order = new Order(orderId(), 1);
    await new OrderService().save(order, pool as never);
    expect(seen[0]).not.toBe(pool);
    expect(seen[0]).toBeInstanceOf(pg.Client);
    expect(order.version).toBe(1);
    expect(await orders.read(pool, order.id)).toMatchObject({ version: 1 });
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('ensureSchema upgrades a table made by the previous schema: adds schema_version, hash, prev_hash and the tx_id index', async () => {
    const table = uniqueTable('legacy');
    tables.push(table);
    await pool.query(
      `CREATE TABLE ${table} (entity_type text NOT NULL, entity_id text NOT NULL, version integer NOT NULL, op text NOT NULL, ` +
        '"timestamp" timestamptz NOT NULL, snapshot jsonb NOT NULL, actor text, reason text, metadata jsonb, tx_id text, ' +
        'PRIMARY KEY (entity_type, entity_id, version))',
    );
    const store = new PostgresHistoryStore(pool, { table });

    await Promise.all([store.ensureSchema(), store.ensureSchema()]);
    await store.ensureSchema();

    const { rows: columns } = await pool.query(
      'SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [table],
    );
    expect(columns.map((row) => row.column_name).slice(-3)).toEqual(['schema_version', 'hash', 'prev_hash']);
    const { rows: indexes } = await pool.query('SELECT indexname FROM pg_indexes WHERE tablename = $1', [table]);
    expect(indexes.map((row) => row.indexname)).toContain(`${table}_tx_idx`);
    const entry = {
      entityType: 'Probe',
      entityId: 'p1',
      version: 1,
      op: 'create' as const,
      timestamp: new Date(Date.UTC(2026, 0, 1)),
      snapshot: { ok: true },
      schemaVersion: 2,
      hash: 'a'.repeat(64),
      txId: 't1',
    };
    await store.save(entry);
    expect(await store.byTransaction('t1')).toEqual([entry]);
  });

  it('ensureSchema is idempotent, also for a schema-qualified table', async () => {
    const schema = uniqueTable('eh_schema');
    await pool.query(`CREATE SCHEMA ${schema}`);
    try {
      const store = new PostgresHistoryStore(pool, { table: `${schema}.history` });
      await store.ensureSchema();
      await store.save({
        entityType: 'Order',
        entityId: 'o1',
        version: 1,
        op: 'create',
        timestamp: new Date(),
        snapshot: {},
      });
      await store.ensureSchema();
      await Promise.all([store.ensureSchema(), store.ensureSchema()]);

      expect((await store.list('Order', 'o1')).map((entry) => entry.version)).toEqual([1]);
      const { rows } = await pool.query(
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'history' ORDER BY indexname`,
        [schema],
      );
      expect(rows.map((row) => row.indexname)).toEqual(['history_entity_time_idx', 'history_pkey', 'history_tx_idx']);
    } finally {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('serves list, at, asOf, latest, page and byTransaction from the history key and its indexes, not a sequential scan', async () => {
    const table = uniqueTable('history');
    tables.push(table);
    const { connection, sent } = recording(pool);
    await expectIndexedReads(pool, new PostgresHistoryStore(connection, { table }), sent);
  });

  /**
   * The pg adapter sends the history INSERT of the call that owns the transaction together with
   * COMMIT (Parse/Bind/Execute for each, one Sync, values as parameters): one round trip fewer
   * than the hand-written BEGIN / UPDATE / INSERT / COMMIT, with the same all-or-nothing outcome.
   */
  describe('the history INSERT travels with COMMIT', () => {
    async function setupService(options: { chain?: boolean } = {}) {
      const tables = await setup();
      const { orders, store } = tables;
      @Versioned()
      @HistoryTracked(store, options)
      class OrderService {
        async save(order: Order, client: pg.PoolClient): Promise<void> {
          await orders.insert(client, order);
        }
        async update(order: Order, client: pg.PoolClient): Promise<unknown> {
          return orders.update(client, order, order.version === undefined ? undefined : order.version - 1);
        }
      }
      return { ...tables, service: new OrderService() };
    }

    it('sends BEGIN, the method’s write and INSERT + COMMIT: one round trip fewer, and the entries read back exactly', async () => {
      const { service, store, historyTable } = await setupService({ chain: true });
      const order = new Order(orderId(), 1);
      const tricky = `it's a \\ back\\slash, "quoted", '); DROP TABLE ${historyTable}; --, ü, 😀, \n tab\t`;
      const sent = await recordingClient(async (client, sent) => {
        await withHistoryContext({ actor: tricky, reason: "O'Brien\\", metadata: { note: tricky, n: 1 } }, async () => {
          await service.save(order, client);
          order.total = 2;
          await service.update(order, client);
        });
        return sent;
      });

      // chain: true reads the previous entry inside the transaction before the update's write.
      // BEGIN travels with each call's first statement, so it is no query of its own.
      expect(sent).toHaveLength(6);
      expect(sent[0]).toMatch(/^INSERT INTO orders_/);
      expect(sent[2]).toMatch(new RegExp(`^INSERT INTO "${historyTable}" .*;\\nCOMMIT$`, 's'));
      expect(sent[5]).toMatch(new RegExp(`^INSERT INTO "${historyTable}" .*;\\nCOMMIT$`, 's'));
      // Parameterized: none of the values is part of the SQL text.
      for (const text of sent) expect(text).not.toContain('DROP TABLE');
      const entry = await store.latest('Order', order.id);
      expect(entry).toMatchObject({
        version: 2,
        op: 'update',
        actor: tricky,
        reason: "O'Brien\\",
        metadata: { note: tricky, n: 1 },
        snapshot: { id: order.id, total: 2, version: 2, timestamp: order.timestamp },
      });
      expect(entry?.timestamp.getTime()).toBe(order.timestamp?.getTime());
      expect(entry?.txId).toMatch(/^\d+$/);
      expect(entry?.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(await verifyHistory(store, 'Order', order.id)).toMatchObject({ ok: true, entries: 2, anchored: true });
    });

    it('reports a history version already taken as VersionConflictError, keeping neither write and restoring the entity', async () => {
      const { service, store, orders } = await setupService();
      const order = new Order(orderId(), 1);
      await recordingClient((client) => service.save(order, client));
      // Another writer already recorded version 2 (history ahead of the row).
      await store.save({ ...(await store.latest('Order', order.id)), version: 2 } as never);
      order.total = 2;

      const error = await recordingClient((client) => service.update(order, client)).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(VersionConflictError);
      expect(error).toMatchObject({ entityId: order.id, expectedVersion: 1 });
      expect(order.version).toBe(1);
      expect(await orders.read(pool, order.id)).toMatchObject({ version: 1, total: 1 });
    });

    it('reports any other failure of the INSERT as HistoryWriteError with the driver error as cause, keeping nothing', async () => {
      const { service, orders, historyTable } = await setupService();
      await pool.query(
        `ALTER TABLE ${historyTable} ADD CONSTRAINT no_big_totals CHECK ((snapshot->>'total')::float < 100)`,
      );
      const order = new Order(orderId(), 500);

      const error = await recordingClient(async (client, sent) => {
        const failure = await service.save(order, client).catch((e: unknown) => e);
        // INSERT + COMMIT in one round trip, then ROLLBACK of the aborted transaction.
        expect(sent.findLast((text) => text.endsWith(';\nCOMMIT'))).toBeDefined();
        expect(sent.at(-1)).toBe('ROLLBACK');
        return failure;
      }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(HistoryWriteError);
      expect((error as HistoryWriteError).cause).toMatchObject({ code: '23514' });
      expect(order.version).toBeUndefined();
      expect(await orders.read(pool, order.id)).toBeUndefined();
    });

    it('sends no COMMIT with an entry no store keeps (a NUL in the actor): InvalidEntityError, nothing written', async () => {
      const { service, orders } = await setupService();
      const order = new Order(orderId(), 1);

      const { error, sent } = await recordingClient(async (client, sent) => ({
        error: await withHistoryContext({ actor: 'a\u0000b' }, () => service.save(order, client)).catch(
          (e: unknown) => e,
        ),
        sent: [...sent],
      }));

      expect(sent.some((text) => text.endsWith('COMMIT'))).toBe(false);
      expect(error).toBeInstanceOf(InvalidEntityError);
      expect(order.version).toBeUndefined();
      expect(await orders.read(pool, order.id)).toBeUndefined();
    });

    it('reports a COMMIT the database refuses (a deferred constraint) as COMMIT_FAILED, not as a history write failure', async () => {
      const { service, orders, store, historyTable } = await setupService();
      const refuse = `${historyTable}_refuse`;
      await pool.query(
        `CREATE FUNCTION ${refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$`,
      );
      await pool.query(
        `CREATE CONSTRAINT TRIGGER ${refuse} AFTER INSERT ON ${historyTable} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${refuse}()`,
      );
      try {
        const order = new Order(orderId(), 1);
        const error = await recordingClient((client) => service.save(order, client)).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(TransactionStateError);
        expect(error).toMatchObject({ code: 'COMMIT_FAILED' });
        expect(order.version).toBeUndefined();
        expect(await orders.read(pool, order.id)).toBeUndefined();
        expect(await store.latest('Order', order.id)).toBeUndefined();
      } finally {
        await pool.query(`DROP TRIGGER ${refuse} ON ${historyTable}; DROP FUNCTION ${refuse}()`);
      }
    });

    it('sends the INSERT on its own inside a transaction the caller began, and leaves COMMIT to the caller', async () => {
      const { service, store } = await setupService();
      const order = new Order(orderId(), 1);

      const sent = await recordingClient(async (client, sent) => {
        await client.query('BEGIN');
        await service.save(order, client);
        expect(client.getTransactionStatus()).toBe('T');
        await client.query('ROLLBACK');
        return sent;
      });

      expect(sent.filter((text) => text.includes('INSERT INTO') && text.includes('history'))).toHaveLength(1);
      expect(sent.some((text) => text.includes('COMMIT'))).toBe(false);
      expect(await store.latest('Order', order.id)).toBeUndefined();
    });

    it('defers only the entry of the call that owns the transaction: a nested call’s entry is written before the outer method goes on', async () => {
      const { store, orders } = await setupService();
      @Versioned()
      @HistoryTracked(store)
      class LineService {
        async save(order: Order, client: pg.PoolClient): Promise<void> {
          await orders.insert(client, order);
        }
      }
      const lines = new LineService();
      @Versioned()
      @HistoryTracked(store)
      class OrderService {
        async save(order: Order, client: pg.PoolClient): Promise<void> {
          await orders.insert(client, order);
          await lines.save(new Order(`${order.id}-line`, 1), client);
        }
      }
      const order = new Order(orderId(), 1);

      const sent = await recordingClient(async (client, sent) => {
        await new OrderService().save(order, client);
        return sent;
      });

      // The nested entry is written before the outer method goes on (on its own, or with the
      // RELEASE of the nested call's savepoint once the pipeline joins nested calls); the outer's
      // entry travels with COMMIT.
      const nested = sent.findIndex((text) => text.includes('INSERT INTO') && text.includes('history'));
      expect(nested).toBeGreaterThan(1);
      expect(nested).toBeLessThan(sent.length - 1);
      expect(sent.at(-1)).toMatch(/^INSERT INTO [^;]*history[^;]*;\nCOMMIT$/s);
      const [outer, inner] = [await store.latest('Order', order.id), await store.latest('Order', `${order.id}-line`)];
      expect(outer?.txId).toBeDefined();
      expect(inner?.txId).toBe(outer?.txId);
    });
  });
});
