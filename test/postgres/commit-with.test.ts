import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HistoryTracked,
  HistoryWriteError,
  TransactionStateError,
  VersionConflictError,
  Versioned,
  verifyHistory,
  withHistoryContext,
} from '../../src/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { Order, orderId } from '../integration/behaviour.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { orderSql, uniqueTable } from './shared.js';

const DATABASE_URL = process.env.DATABASE_URL;

/**
 * The pg adapter sends the history INSERT of the call that owns the transaction together with
 * COMMIT (`INSERT …; COMMIT` in one simple-protocol query): one round trip fewer than the
 * hand-written BEGIN / UPDATE / INSERT / COMMIT, with the same all-or-nothing outcome.
 */
describe.runIf(DATABASE_URL || REQUIRE_DATABASES)('PostgreSQL: the history INSERT travels with COMMIT', () => {
  let pool: pg.Pool;
  const tables: string[] = [];

  beforeAll(() => {
    if (!DATABASE_URL) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  });

  afterAll(async () => {
    if (!pool) return;
    try {
      if (tables.length > 0) await pool.query(`DROP TABLE IF EXISTS ${tables.join(', ')} CASCADE`);
    } finally {
      await pool.end();
    }
  });

  async function setup(options: { chain?: boolean } = {}) {
    const ordersTable = uniqueTable('orders');
    const historyTable = uniqueTable('history');
    tables.push(ordersTable, historyTable);
    const orders = orderSql(ordersTable);
    await pool.query(orders.create);
    const store = new PostgresHistoryStore(pool, { table: historyTable });
    await store.ensureSchema();
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
    return { orders, historyTable, store, service: new OrderService() };
  }

  /** Runs `work` on a pooled client whose queries are recorded, as the server receives them. */
  async function recordingClient<R>(work: (client: pg.PoolClient, sent: string[]) => Promise<R>): Promise<R> {
    const client = await pool.connect();
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
      client.release();
    }
  }

  it('sends BEGIN, the method’s write and INSERT + COMMIT: one round trip fewer, and the entries read back exactly', async () => {
    const { service, store, historyTable } = await setup({ chain: true });
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
    expect(sent).toHaveLength(8);
    expect(sent[0]).toMatch(/^BEGIN/);
    expect(sent[3]).toMatch(new RegExp(`^INSERT INTO "${historyTable}" .*;\\nCOMMIT$`, 's'));
    expect(sent[7]).toMatch(new RegExp(`^INSERT INTO "${historyTable}" .*;\\nCOMMIT$`, 's'));
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
    expect(await verifyHistory(store, 'Order', order.id)).toEqual({ ok: true, entries: 2, unchained: 0 });
  });

  it('reports a history version already taken as VersionConflictError, keeping neither write and restoring the entity', async () => {
    const { service, store, orders } = await setup();
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
    const { service, orders, historyTable } = await setup();
    await pool.query(
      `ALTER TABLE ${historyTable} ADD CONSTRAINT no_big_totals CHECK ((snapshot->>'total')::float < 100)`,
    );
    const order = new Order(orderId(), 500);

    const error = await recordingClient(async (client, sent) => {
      const failure = await service.save(order, client).catch((e: unknown) => e);
      // INSERT + COMMIT, at most an empty query that waits for the server's status, then ROLLBACK.
      expect(sent.findLast((text) => text.endsWith(';\nCOMMIT'))).toBeDefined();
      expect(sent.at(-1)).toBe('ROLLBACK');
      return failure;
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(HistoryWriteError);
    expect((error as HistoryWriteError).cause).toMatchObject({ code: '23514' });
    expect(order.version).toBeUndefined();
    expect(await orders.read(pool, order.id)).toBeUndefined();
  });

  it('writes through save() when a value cannot be a literal (a NUL character), with the same outcome as before', async () => {
    const { service, orders } = await setup();
    const order = new Order(orderId(), 1);

    const { error, sent } = await recordingClient(async (client, sent) => ({
      error: await withHistoryContext({ actor: 'a\u0000b' }, () => service.save(order, client)).catch(
        (e: unknown) => e,
      ),
      sent: [...sent],
    }));

    expect(sent.some((text) => text.endsWith('COMMIT'))).toBe(false);
    expect(error).toBeInstanceOf(HistoryWriteError);
    expect(order.version).toBeUndefined();
    expect(await orders.read(pool, order.id)).toBeUndefined();
  });

  it('reports a COMMIT the database refuses (a deferred constraint) as COMMIT_FAILED, not as a history write failure', async () => {
    const { service, orders, store, historyTable } = await setup();
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
    const { service, store } = await setup();
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

  it('defers only the entry of the call that owns the transaction: a nested call’s entry is written on its own', async () => {
    const { store, orders } = await setup();
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

    expect(sent).toHaveLength(5);
    expect(sent[3]).toMatch(/^INSERT INTO .*history/);
    expect(sent[4]).toMatch(/;\nCOMMIT$/);
    const [outer, inner] = [await store.latest('Order', order.id), await store.latest('Order', `${order.id}-line`)];
    expect(outer?.txId).toBeDefined();
    expect(inner?.txId).toBe(outer?.txId);
  });
});
