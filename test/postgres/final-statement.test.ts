import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type HistoryEntry,
  HistoryTracked,
  HistoryWriteError,
  InvalidEntityError,
  TransactionStateError,
  VersionConflictError,
  Versioned,
  withHistoryContext,
} from '../../src/index.js';
import { PostgresHistoryStore, type PostgresQueryable, pgAdapter, pgliteAdapter } from '../../src/postgres/index.js';
import type { TransactionAdapter } from '../../src/transactions/adapter.js';
import { writeLast } from '../../src/transactions/final-statement.js';
import { Order, orderId } from '../integration/behaviour.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { suiteNeeding } from '../support/skip.js';
import { orderSql, type Queryable, uniqueTable, wireRoundTrips } from './shared.js';

/** The adapters' join, which the type leaves optional. */
function joinOf<S>(adapter: TransactionAdapter<S>): <R>(session: S, work: () => Promise<R>) => Promise<R> {
  const join = adapter.join;
  if (join === undefined) throw new Error(`${adapter.name} has no join`);
  return <R>(session: S, work: () => Promise<R>) => join.call(adapter, session, work) as Promise<R>;
}
const pgJoin = joinOf(pgAdapter);
const pgliteJoin = joinOf(pgliteAdapter);

const DATABASE_URL = process.env.DATABASE_URL;
const suite = suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set');

/** Every call of client.query, as the server receives them: one round trip each. */
function counting(client: pg.PoolClient): { sent: string[]; restore: () => void } {
  const query = client.query;
  const sent: string[] = [];
  client.query = ((text: unknown, ...rest: unknown[]) => {
    sent.push(typeof text === 'string' ? text : String((text as { text?: unknown }).text));
    return (query as (...args: unknown[]) => unknown).call(client, text, ...rest);
  }) as typeof client.query;
  return {
    sent,
    restore: () => {
      client.query = query;
    },
  };
}

function entryOf(order: Order, version: number, extra: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    entityType: 'Order',
    entityId: order.id,
    version,
    op: version === 1 ? 'create' : 'update',
    timestamp: new Date(),
    snapshot: { id: order.id, total: order.total },
    ...extra,
  };
}

const fail = (error: unknown) => new HistoryWriteError('Order', '?', 0, error);

suite(`The history write of a call (node-postgres)${DATABASE_URL || REQUIRE_DATABASES ? '' : ' (skipped: DATABASE_URL is not set)'}`, () => {
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

  async function setup<S extends PostgresHistoryStore = PostgresHistoryStore>(
    make: (pool: pg.Pool, table: string) => S = (p, table) => new PostgresHistoryStore(p, { table }) as S,
  ) {
    const ordersTable = uniqueTable('orders');
    const historyTable = uniqueTable('history');
    const canary = uniqueTable('canary');
    tables.push(ordersTable, historyTable, canary);
    const orders = orderSql(ordersTable);
    await pool.query(orders.create);
    await pool.query(`CREATE TABLE ${canary} (alive boolean)`);
    await pool.query(`INSERT INTO ${canary} VALUES (true)`);
    const store = make(pool, historyTable);
    await store.ensureSchema();
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, client: Queryable): Promise<void> {
        await orders.insert(client, order);
      }
      async update(order: Order, client: Queryable): Promise<unknown> {
        return orders.update(client, order, (order.version ?? 1) - 1);
      }
    }
    const canaryAlive = async () =>
      (await pool.query(`SELECT to_regclass($1) IS NOT NULL AS alive`, [canary])).rows[0]?.alive === true;
    return { orders, ordersTable, historyTable, canary, canaryAlive, store, service: new OrderService() };
  }

  async function withClient<R>(work: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    const client = await pool.connect();
    try {
      return await work(client);
    } finally {
      // A transaction or session setting a test left must not leak into the pool's next user.
      if (client.getTransactionStatus() !== 'I') await client.query('ROLLBACK').catch(() => undefined);
      await client.query('RESET ALL').catch(() => undefined);
      client.release();
    }
  }

  describe('values never travel inside SQL text (12.1)', () => {
    // U+0095 is C2 95 in UTF-8; read as SJIS, 95 5C is one character, which swallows the backslash
    // an escaper doubles, so the quote after it closes the literal.
    const breakout = (canary: string) => `\u0095\\', NULL, NULL, NULL, NULL, NULL, NULL); DROP TABLE ${canary}; --`;

    for (const backslashQuote of ['on', 'safe_encoding']) {
      it(`stores a crafted actor under client_encoding SJIS and backslash_quote = ${backslashQuote} as data: the canary table survives, the actor reads back exactly`, async () => {
        const { service, store, canary, canaryAlive } = await setup();
        const order = new Order(orderId(), 1);
        const actor = breakout(canary);
        await withClient(async (client) => {
          await client.query(`SET client_encoding = 'SJIS'; SET backslash_quote = ${backslashQuote}`);
          await withHistoryContext({ actor }, () => service.save(order, client));
        });
        expect(await canaryAlive()).toBe(true);
        expect((await store.latest('Order', order.id))?.actor).toBe(actor);
      });
    }
  });

  describe('round trips', () => {
    it('an owned guarded update costs 2 round trips: BEGIN (+ xact id) with the UPDATE, INSERT + COMMIT, the INSERT parameterized', async () => {
      const { service, store } = await setup();
      const order = new Order(orderId(), 1);
      await withClient(async (client) => {
        await service.save(order, client);
        order.total = 2;
        const { sent, restore } = counting(client);
        const wire = wireRoundTrips(client);
        await withHistoryContext({ actor: "O'Brien" }, () => service.update(order, client));
        wire.stop();
        restore();
        expect(wire.count()).toBe(2);
        expect(sent).toHaveLength(2);
        expect(sent[0]).toMatch(/^UPDATE/);
        expect(sent[1]).toMatch(/^INSERT INTO .*\$13.*;\nCOMMIT$/s);
        expect(sent[1]).not.toContain("O'Brien");
      });
      expect(await store.latest('Order', order.id)).toMatchObject({ version: 2, actor: "O'Brien", txId: /^\d+$/ });
    });

    it('a join costs one round trip more than the plain write: SAVEPOINT, the work’s UPDATE, INSERT + RELEASE SAVEPOINT', async () => {
      const { orders, store } = await setup();
      const order = new Order(orderId(), 1);
      order.version = 1;
      order.timestamp = new Date();
      await orders.insert(pool, order);
      await withClient(async (client) => {
        await client.query('BEGIN');
        const { sent, restore } = counting(client);
        await pgJoin(client, async () => {
          order.total = 2;
          order.version = 2;
          await orders.update(client, order, 1);
          await writeLast(client, fail, () => store.save(entryOf(order, 2), client));
        });
        restore();
        expect(sent).toEqual([
          'SAVEPOINT event_history_1',
          expect.stringMatching(/^UPDATE/),
          expect.stringMatching(/^INSERT INTO .*;\nRELEASE SAVEPOINT event_history_1$/s),
        ]);
        await client.query('COMMIT');
      });
      expect(await store.latest('Order', order.id)).toMatchObject({ version: 2 });
    });

    it('a decorated call in a transaction the caller began: SAVEPOINT, UPDATE, INSERT + RELEASE (needs the pipeline to call join)', async () => {
      const { service, store } = await setup();
      const order = new Order(orderId(), 1);
      await withClient(async (client) => {
        await service.save(order, client);
        order.total = 2;
        await client.query('BEGIN');
        const { sent, restore } = counting(client);
        await service.update(order, client);
        restore();
        await client.query('COMMIT');
        expect(sent).toHaveLength(3);
        expect(sent[0]).toBe('SAVEPOINT event_history_1');
        expect(sent[2]).toMatch(/;\nRELEASE SAVEPOINT event_history_1$/);
      });
      expect(await store.latest('Order', order.id)).toMatchObject({ version: 2 });
    });
  });

  describe('joined calls are atomic (11.1)', () => {
    it('a join whose work fails after writing rolls back to its savepoint: the caller commits its other work, nothing of the join', async () => {
      const { orders, store } = await setup();
      const [mine, theirs] = [new Order(orderId(), 1), new Order(orderId(), 9)];
      theirs.version = 1;
      theirs.timestamp = new Date();
      mine.version = 1;
      mine.timestamp = new Date();
      await withClient(async (client) => {
        await client.query('BEGIN');
        await orders.insert(client, theirs);
        const error = await pgJoin(client, async () => {
          await orders.insert(client, mine);
          throw new Error('after the write');
        }).catch((e: unknown) => e);
        expect(error).toMatchObject({ message: 'after the write' });
        expect(client.getTransactionStatus()).toBe('T');
        await client.query('COMMIT');
      });
      expect(await orders.read(pool, theirs.id)).toBeDefined();
      expect(await orders.read(pool, mine.id)).toBeUndefined();
      expect(await store.latest('Order', mine.id)).toBeUndefined();
    });

    it('a deferred INSERT that fails at RELEASE (history key taken) rolls back to the savepoint and rejects with its mapped error', async () => {
      const { orders, store } = await setup();
      const [mine, theirs] = [new Order(orderId(), 1), new Order(orderId(), 9)];
      for (const order of [mine, theirs]) Object.assign(order, { version: 1, timestamp: new Date() });
      await store.save(entryOf(mine, 1));
      await withClient(async (client) => {
        await client.query('BEGIN');
        await orders.insert(client, theirs);
        const error = await pgJoin(client, async () => {
          await orders.insert(client, mine);
          await writeLast(client, fail, () => store.save(entryOf(mine, 1), client));
        }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HistoryWriteError);
        expect((error as HistoryWriteError).cause).toMatchObject({ code: '23505' });
        expect(client.getTransactionStatus()).toBe('T');
        await client.query('COMMIT');
      });
      expect(await orders.read(pool, theirs.id)).toBeDefined();
      expect(await orders.read(pool, mine.id)).toBeUndefined();
    });

    it('a statement that failed and was caught inside the join: rolled back to the savepoint, TRANSACTION_ABORTED, the caller’s transaction goes on', async () => {
      const { orders } = await setup();
      const theirs = Object.assign(new Order(orderId(), 9), { version: 1, timestamp: new Date() });
      await withClient(async (client) => {
        await client.query('BEGIN');
        await orders.insert(client, theirs);
        const error = await pgJoin(client, async () => {
          await client.query('SELECT 1/0').catch(() => undefined);
        }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TransactionStateError);
        expect(error).toMatchObject({ code: 'TRANSACTION_ABORTED' });
        await client.query('COMMIT');
      });
      expect(await orders.read(pool, theirs.id)).toBeDefined();
    });

    it('joins nest (event_history_1, event_history_2), and concurrent joins on one client run one after the other', async () => {
      const { orders } = await setup();
      const [a, b, c] = [1, 2, 3].map((n) =>
        Object.assign(new Order(orderId(), n), { version: 1, timestamp: new Date() }),
      );
      const seen: string[] = [];
      await withClient(async (client) => {
        await client.query('BEGIN');
        const { sent, restore } = counting(client);
        await pgJoin(client, async () => {
          await orders.insert(client, a as Order);
          await pgJoin(client, async () => {
            await orders.insert(client, b as Order);
            throw new Error('inner');
          }).catch(() => undefined);
        });
        await Promise.all([
          pgJoin(client, () => orders.insert(client, c as Order)),
          pgJoin(client, () => client.query('SELECT 1')),
        ]);
        restore();
        seen.push(...sent.filter((text) => text.includes('SAVEPOINT')));
        await client.query('COMMIT');
      });
      expect(seen).toEqual([
        'SAVEPOINT event_history_1',
        'SAVEPOINT event_history_2',
        'ROLLBACK TO SAVEPOINT event_history_2; RELEASE SAVEPOINT event_history_2',
        'RELEASE SAVEPOINT event_history_1',
        'SAVEPOINT event_history_1',
        'RELEASE SAVEPOINT event_history_1',
        'SAVEPOINT event_history_1',
        'RELEASE SAVEPOINT event_history_1',
      ]);
      expect(await orders.read(pool, (a as Order).id)).toBeDefined();
      expect(await orders.read(pool, (b as Order).id)).toBeUndefined();
      expect(await orders.read(pool, (c as Order).id)).toBeDefined();
    });

    describe('through a decorated service (needs the pipeline to call join)', () => {
      async function joinedFailure(
        options: Parameters<typeof HistoryTracked>[1],
        prepare?: (store: PostgresHistoryStore, order: Order) => Promise<void>,
      ) {
        const { orders, store } = await setup();
        @Versioned()
        @HistoryTracked(store, options)
        class Service {
          async save(order: Order, client: Queryable): Promise<void> {
            await orders.insert(client, order);
          }
        }
        const [mine, theirs] = [new Order(orderId(), 1), new Order(orderId(), 9)];
        Object.assign(theirs, { version: 1, timestamp: new Date() });
        await prepare?.(store, mine);
        const error = await withClient(async (client) => {
          await client.query('BEGIN');
          await orders.insert(client, theirs);
          const failure = await new Service().save(mine, client).catch((e: unknown) => e);
          expect(client.getTransactionStatus()).toBe('T');
          await client.query('COMMIT');
          return failure;
        });
        expect(await orders.read(pool, theirs.id)).toBeDefined();
        expect(await orders.read(pool, mine.id)).toBeUndefined();
        return error;
      }

      it('an oversized snapshot (maxSnapshotBytes): InvalidEntityError, the method’s row is not committed, the caller’s is', async () => {
        const error = await joinedFailure({ maxSnapshotBytes: 8 });
        expect(error).toBeInstanceOf(InvalidEntityError);
      });

      it('a throwing metadata callback: its error, the method’s row is not committed, the caller’s is', async () => {
        const error = await joinedFailure({
          metadata: () => {
            throw new Error('metadata failed');
          },
        });
        expect(error).toMatchObject({ message: 'metadata failed' });
      });

      it('a history-key conflict at RELEASE: VersionConflictError, the method’s row is not committed, the caller’s is', async () => {
        const error = await joinedFailure({}, async (store, order) => {
          await store.save(entryOf(order, 1));
        });
        expect(error).toBeInstanceOf(VersionConflictError);
      });
    });
  });

  describe('the store stays in charge of writing (12.3)', () => {
    it('a subclass whose save validates, then calls super.save, is called and keeps the one-round-trip path', async () => {
      const seen: number[] = [];
      class Checked extends PostgresHistoryStore {
        override async save(entry: HistoryEntry, session?: PostgresQueryable): Promise<void> {
          if (entry.version > 99) throw new Error('too many versions');
          seen.push(entry.version);
          await super.save(entry, session);
        }
      }
      const { service, store } = await setup((p, table) => new Checked(p, { table }));
      const order = new Order(orderId(), 1);
      await withClient(async (client) => {
        const { sent, restore } = counting(client);
        await service.save(order, client);
        restore();
        expect(sent).toHaveLength(2);
        expect(sent[1]).toMatch(/;\nCOMMIT$/);
      });
      expect(seen).toEqual([1]);
      expect(await store.latest('Order', order.id)).toMatchObject({ version: 1 });
    });

    it('an outbox row a subclass writes after super.save commits with the entry; a failure after super.save keeps neither', async () => {
      const outbox = uniqueTable('outbox');
      tables.push(outbox);
      await pool.query(`CREATE TABLE ${outbox} (entity_id text, version integer)`);
      class WithOutbox extends PostgresHistoryStore {
        override async save(entry: HistoryEntry, session?: PostgresQueryable): Promise<void> {
          await super.save(entry, session);
          await (session ?? this.connection).query(`INSERT INTO ${outbox} VALUES ($1, $2)`, [
            entry.entityId,
            entry.version,
          ]);
          if (entry.snapshot && (entry.snapshot as { total?: number }).total === 13) throw new Error('unlucky');
        }
      }
      const { service, store, orders } = await setup((p, table) => new WithOutbox(p, { table }));
      const [kept, dropped] = [new Order(orderId(), 1), new Order(orderId(), 13)];
      const error = await withClient(async (client) => {
        await service.save(kept, client);
        return service.save(dropped, client).catch((e: unknown) => e);
      });
      expect(error).toBeInstanceOf(HistoryWriteError);
      const rows = (await pool.query(`SELECT entity_id FROM ${outbox}`)).rows as { entity_id: string }[];
      expect(rows.map((row) => row.entity_id)).toEqual([kept.id]);
      expect(await store.latest('Order', kept.id)).toMatchObject({ version: 1 });
      expect(await store.latest('Order', dropped.id)).toBeUndefined();
      expect(await orders.read(pool, dropped.id)).toBeUndefined();
    });

    it('a subclass that writes twice hands both statements over; they travel together, in order, with COMMIT', async () => {
      class Twice extends PostgresHistoryStore {
        override async save(entry: HistoryEntry, session?: PostgresQueryable): Promise<void> {
          await super.save(entry, session);
          await super.save({ ...entry, entityType: 'OrderCopy' }, session);
        }
      }
      const { service, store } = await setup((p, table) => new Twice(p, { table }));
      const order = new Order(orderId(), 1);
      await withClient(async (client) => {
        const { sent, restore } = counting(client);
        await service.save(order, client);
        restore();
        expect(sent).toHaveLength(2);
        expect(sent[1]?.split(';\n')).toHaveLength(3);
      });
      expect(await store.latest('OrderCopy', order.id)).toMatchObject({ version: 1 });
    });

    it('with { sendWithCommit: false } the INSERT is a round trip of its own', async () => {
      const { service, store } = await setup(
        (p, table) => new PostgresHistoryStore(p, { table, sendWithCommit: false }),
      );
      const order = new Order(orderId(), 1);
      await withClient(async (client) => {
        const { sent, restore } = counting(client);
        await service.save(order, client);
        restore();
        expect(sent).toHaveLength(3);
        expect(sent[2]).toBe('COMMIT');
      });
      expect(await store.latest('Order', order.id)).toMatchObject({ version: 1 });
    });
  });

  // (An Invalid Date is no longer among them: the codec keeps it exactly, see test/history/codec-stores.test.ts.)
  describe('an entry that cannot be encoded is a HistoryWriteError on every path (12.5)', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const cases: [string, Record<string, unknown>][] = [
      ['a BigInt', { n: 10n }],
      ['a cycle', { loop: cyclic }],
    ];
    for (const [what, metadata] of cases) {
      it(`metadata holding ${what}: owned, joined and without a session`, async () => {
        const { service, store, orders } = await setup();
        const [owned, joined] = [new Order(orderId(), 1), new Order(orderId(), 2)];
        await withClient(async (client) => {
          const ownedError = await withHistoryContext({ metadata }, () => service.save(owned, client)).catch(
            (e: unknown) => e,
          );
          expect(ownedError).toBeInstanceOf(HistoryWriteError);
          expect(owned.version).toBeUndefined();
          await client.query('BEGIN');
          const joinedError = await withHistoryContext({ metadata }, () => service.save(joined, client)).catch(
            (e: unknown) => e,
          );
          expect(joinedError).toBeInstanceOf(HistoryWriteError);
          await client.query('ROLLBACK');
        });
        const direct = await store.save(entryOf(owned, 1, { metadata })).catch((e: unknown) => e);
        expect(direct).toBeInstanceOf(HistoryWriteError);
        expect(await orders.read(pool, owned.id)).toBeUndefined();
        expect(await store.latest('Order', owned.id)).toBeUndefined();
      });
    }

    it('an invalid timestamp on an entry saved directly', async () => {
      const { store } = await setup();
      const error = await store
        .save(entryOf(new Order(orderId(), 1), 1, { timestamp: new Date(Number.NaN) }))
        .catch((e: unknown) => e);
      // The codec's rule on every store: an entry whose timestamp no store keeps, before anything is sent.
      expect(error).toBeInstanceOf(InvalidEntityError);
    });
  });
});

describe('PGlite joins', () => {
  let db: PGlite;
  beforeAll(async () => {
    db = await PGlite.create();
  });
  afterAll(async () => {
    await db?.close();
  });

  async function setupPglite() {
    const ordersTable = uniqueTable('orders');
    const orders = orderSql(ordersTable);
    await db.query(orders.create);
    return orders;
  }

  it('on an instance the caller began a transaction on: a failing join leaves nothing, the caller commits the rest', async () => {
    const orders = await setupPglite();
    const [mine, theirs] = [1, 2].map((n) =>
      Object.assign(new Order(orderId(), n), { version: 1, timestamp: new Date() }),
    );
    await db.exec('BEGIN');
    await orders.insert(db, theirs as Order);
    const error = await pgliteJoin(db, async () => {
      await orders.insert(db, mine as Order);
      throw new Error('after the write');
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'after the write' });
    await db.exec('COMMIT');
    expect(await orders.read(db, (theirs as Order).id)).toBeDefined();
    expect(await orders.read(db, (mine as Order).id)).toBeUndefined();
  });

  it('inside db.transaction(): a join whose statement failed is rolled back to its savepoint, and the tx still commits', async () => {
    const orders = await setupPglite();
    const [mine, theirs, after] = [1, 2, 3].map((n) =>
      Object.assign(new Order(orderId(), n), { version: 1, timestamp: new Date() }),
    );
    let error: unknown;
    await db.transaction(async (tx) => {
      await orders.insert(tx, theirs as Order);
      error = await pgliteJoin(tx, async () => {
        await orders.insert(tx, mine as Order);
        await tx.query('SELECT 1/0').catch(() => undefined);
      }).catch((e: unknown) => e);
      await pgliteJoin(tx, () => orders.insert(tx, after as Order));
    });
    expect(error).toBeInstanceOf(TransactionStateError);
    expect(await orders.read(db, (theirs as Order).id)).toBeDefined();
    expect(await orders.read(db, (after as Order).id)).toBeDefined();
    expect(await orders.read(db, (mine as Order).id)).toBeUndefined();
  });
});
