import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentCall,
  HistoryTracked,
  registerTransactionAdapter,
  TransactionStateError,
  Versioned,
} from '../../src/index.js';
import { createPgAdapter, PostgresHistoryStore } from '../../src/postgres/index.js';
import { Order, orderId } from '../integration/behaviour.js';
import { suiteNeeding } from '../support/skip.js';
import { orderSql, uniqueTable, wireRoundTrips } from './shared.js';

const DATABASE_URL = process.env.DATABASE_URL;
const suite = suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set');

suite(`BEGIN travels with the first statement (node-postgres)${suite === describe ? '' : ' (skipped: DATABASE_URL is not set)'}`, () => {
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

  async function setup() {
    const ordersTable = uniqueTable('orders');
    const historyTable = uniqueTable('history');
    tables.push(ordersTable, historyTable);
    const orders = orderSql(ordersTable);
    await pool.query(orders.create);
    const store = new PostgresHistoryStore(pool, { table: historyTable });
    await store.ensureSchema();
    return { orders, ordersTable, store };
  }

  async function withClient<R>(work: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    const client = await pool.connect();
    try {
      const result = await work(client);
      // Nothing of the deferred BEGIN is left on the client: no transaction, no patched socket or connection.
      expect(client.getTransactionStatus()).toBe('I');
      const connection = (client as unknown as { connection: { stream: object } }).connection;
      expect(Object.hasOwn(connection.stream, 'write')).toBe(false);
      expect(Object.hasOwn(connection, 'emit')).toBe(false);
      return result;
    } finally {
      if (client.getTransactionStatus() !== 'I') await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  }

  it('an owned update is two round trips, and its txId is the transaction’s own pg_current_xact_id', async () => {
    const { orders, store } = await setup();
    const seen: { xact?: string; txId?: string } = {};
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient) {
        await orders.insert(client, order);
      }
      async update(order: Order, client: pg.PoolClient) {
        const updated = await orders.update(client, order, (order.version ?? 1) - 1);
        seen.txId = currentCall()?.txId;
        return updated;
      }
      async xact(_order: Order, client: pg.PoolClient) {
        seen.xact = (await client.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id')).rows[0]?.id;
      }
    }
    const service = new OrderService();
    const order = new Order(orderId(), 1);
    await withClient(async (client) => {
      await service.save(order, client);
      order.total = 2;
      const wire = wireRoundTrips(client);
      await service.update(order, client);
      wire.stop();
      expect(wire.count()).toBe(2);
    });
    const entry = await store.latest('Order', order.id);
    expect(entry).toMatchObject({ version: 2, txId: seen.txId });
    expect(seen.txId).toMatch(/^\d+$/);
    // The id is PostgreSQL's: a transaction begun the same way reads it back itself.
    const probe = new Order(orderId(), 1);
    await withClient((client) => new OrderService().xact(probe, client).then(() => undefined));
    expect(BigInt(seen.xact ?? '0')).toBeGreaterThan(BigInt(seen.txId ?? '0'));
  });

  it('the first statement runs inside the transaction: a method that fails after it leaves nothing', async () => {
    const { orders, store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient) {
        await orders.insert(client, order);
        throw new Error('after the insert');
      }
    }
    const order = new Order(orderId(), 1);
    const error = await withClient((client) => new OrderService().save(order, client).catch((e: unknown) => e));
    expect((error as Error).message).toBe('after the insert');
    expect(await orders.read(pool, order.id)).toBeUndefined();
    expect(await store.latest('Order', order.id)).toBeUndefined();
  });

  it('a statement sent past client.query (Client.prototype.query, a captured reference) still carries BEGIN', async () => {
    const { ordersTable, store } = await setup();
    const sendDirectly = pg.Client.prototype.query as (
      this: pg.ClientBase,
      text: string,
      values: unknown[],
    ) => Promise<unknown>;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient) {
        await sendDirectly.call(
          client,
          `INSERT INTO ${ordersTable} (id, total, version, "timestamp") VALUES ($1, $2, $3, $4)`,
          [order.id, order.total, order.version, order.timestamp],
        );
        throw new Error('after the insert');
      }
    }
    const order = new Order(orderId(), 1);
    await withClient((client) => new OrderService().save(order, client).catch(() => undefined));
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${ordersTable}`)).rows[0]?.n).toBe(0);
  });

  it('a simple-protocol first statement that fails: its own error, the position inside its own text, nothing kept', async () => {
    const { store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(_order: Order, client: pg.PoolClient) {
        await client.query('SELECT 1 FROMM nowhere');
      }
    }
    const order = new Order(orderId(), 1);
    const error = (await withClient((client) => new OrderService().save(order, client).catch((e: unknown) => e))) as {
      code?: string;
      position?: string;
    };
    expect(error.code).toBe('42601');
    // 'SELECT 1 FROMM nowhere': the error is at "nowhere", character 16 of the method's own text.
    expect(error.position).toBe('16');
    expect(await store.latest('Order', order.id)).toBeUndefined();
  });

  it('a simple-protocol first statement gets its own result shape (not the multi-statement array)', async () => {
    const { store } = await setup();
    let result: unknown;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(_order: Order, client: pg.PoolClient) {
        result = await client.query("SELECT 41 + 1 AS answer, 'x' AS tag");
      }
    }
    await withClient((client) => new OrderService().save(new Order(orderId(), 1), client));
    expect(Array.isArray(result)).toBe(false);
    expect(result).toMatchObject({ command: 'SELECT', rowCount: 1, rows: [{ answer: 42, tag: 'x' }] });
  });

  it('a method that sends nothing on the client: BEGIN, the history INSERT and COMMIT in one round trip', async () => {
    const { store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(_order: Order, _client: pg.PoolClient) {}
    }
    const order = new Order(orderId(), 1);
    await withClient(async (client) => {
      const wire = wireRoundTrips(client);
      await new OrderService().save(order, client);
      wire.stop();
      expect(wire.count()).toBe(1);
    });
    const entry = await store.latest('Order', order.id);
    expect(entry).toMatchObject({ version: 1 });
    // Read before PostgreSQL could tell it: a random UUID, the same in memory and in the row.
    expect(entry?.txId).toMatch(/^[0-9a-f]{8}-/);
  });

  it('a statement the method does not wait for: the transaction waits for its reply, then commits both', async () => {
    const { orders, store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient) {
        void orders.insert(client, order);
      }
    }
    const order = new Order(orderId(), 1);
    await withClient((client) => new OrderService().save(order, client));
    expect(await orders.read(pool, order.id)).toMatchObject({ version: 1 });
    expect(await store.latest('Order', order.id)).toMatchObject({ version: 1, txId: /^\d+$/ });
  });

  it('a nested call whose SAVEPOINT is the first statement, and SERIALIZABLE in effect from that statement on', async () => {
    const { orders, store } = await setup();
    const unregister = registerTransactionAdapter(createPgAdapter({ isolation: 'serializable' }));
    const isolation: string[] = [];
    @Versioned()
    @HistoryTracked(store)
    class Inner {
      async save(order: Order, client: pg.PoolClient) {
        isolation.push((await client.query('SHOW transaction_isolation')).rows[0]?.transaction_isolation);
        await orders.insert(client, order);
      }
    }
    const inner = new Inner();
    @Versioned()
    @HistoryTracked(store)
    class Outer {
      async save(order: Order, client: pg.PoolClient) {
        await inner.save(new Order(`${order.id}-inner`, 1), client);
        await orders.insert(client, order);
      }
    }
    const order = new Order(orderId(), 1);
    try {
      await withClient((client) => new Outer().save(order, client));
    } finally {
      unregister();
    }
    expect(isolation).toEqual(['serializable']);
    const [outerEntry, innerEntry] = [
      await store.latest('Order', order.id),
      await store.latest('Order', `${order.id}-inner`),
    ];
    expect(outerEntry?.txId).toMatch(/^\d+$/);
    expect(innerEntry?.txId).toBe(outerEntry?.txId);
  });

  it("with transactionId: 'random' an owned update is two round trips too", async () => {
    const { orders, store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: pg.PoolClient) {
        await orders.insert(client, order);
      }
    }
    const unregister = registerTransactionAdapter(createPgAdapter({ transactionId: 'random' }));
    const order = new Order(orderId(), 1);
    try {
      await withClient(async (client) => {
        const wire = wireRoundTrips(client);
        await new OrderService().save(order, client);
        wire.stop();
        expect(wire.count()).toBe(2);
      });
    } finally {
      unregister();
    }
    expect((await store.latest('Order', order.id))?.txId).toMatch(/^[0-9a-f]{8}-/);
  });

  it('a COMMIT the method sends as its first statement ends the transaction it carried: TRANSACTION_CLOSED', async () => {
    const { store } = await setup();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(_order: Order, client: pg.PoolClient) {
        await client.query('COMMIT');
      }
    }
    const order = new Order(orderId(), 1);
    const error = await withClient((client) => new OrderService().save(order, client).catch((e: unknown) => e));
    expect(error).toBeInstanceOf(TransactionStateError);
    expect(error).toMatchObject({ code: 'TRANSACTION_CLOSED' });
    expect(await store.latest('Order', order.id)).toBeUndefined();
  });
});
