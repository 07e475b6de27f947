import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectedVersion,
  type HistoryEntry,
  HistoryTracked,
  HistoryWriteError,
  type HistoryWriter,
  VersionConflictError,
  Versioned,
  withHistoryContext,
} from '../../src/index.js';
import { tickingClock } from '../support/orders.js';
import { type DatabaseFixture, type OrderRow, REQUIRE_DATABASES } from './fixture.js';
import { describeReading } from './reading.js';

/** The entity of the suite: an order with a nested customer and an array of lines, Dates inside both. */
export class Order implements OrderRow {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
  customer?: { name: string; since: Date; tags: string[] };
  lines?: { sku: string; qty: number; shippedAt: Date | null }[];

  constructor(id: string, total: number, extra: Pick<Order, 'customer' | 'lines'> = {}) {
    this.id = id;
    this.total = total;
    Object.assign(this, extra);
  }
}

/** A history writer that hands each entry to the store, then fails once when told to: after inserting. */
export class FailingHistory<S> implements HistoryWriter<S> {
  failAfterNextInsert: Error | undefined;

  constructor(readonly store: HistoryWriter<S>) {}

  async save(entry: HistoryEntry, session?: S): Promise<void> {
    await this.store.save(entry, session);
    const failure = this.failAfterNextInsert;
    this.failAfterNextInsert = undefined;
    if (failure) throw failure;
  }
}

/** A fresh id per test, so tests sharing one table never meet. */
export function orderId(): string {
  return `o-${randomUUID().slice(0, 12)}`;
}

const METHODS = { save: 'create', update: 'update', remove: 'delete' } as const;

/**
 * The decorated services of the suite, written as a user would: repository code with the raw
 * driver (the fixture's), a guarded update and delete, history through the same session.
 */
export function orderServices<S>(fixture: DatabaseFixture<S>) {
  const clock = tickingClock();

  @Versioned({ methods: METHODS, clock })
  @HistoryTracked('history', { methods: METHODS })
  class OrderService {
    constructor(readonly history: HistoryWriter<S>) {}

    async save(order: Order, session: S): Promise<unknown> {
      return fixture.insertOrder(session, order);
    }

    async update(order: Order, session: S): Promise<unknown> {
      return fixture.updateOrder(session, order, expectedVersion(order));
    }

    async remove(order: Order, session: S): Promise<unknown> {
      return fixture.deleteOrder(session, order, expectedVersion(order));
    }
  }

  /** Its update forgets the version guard: only the history key can catch a lost update. */
  @Versioned({ clock })
  @HistoryTracked('history')
  class UnguardedOrderService {
    constructor(readonly history: HistoryWriter<S>) {}

    async save(order: Order, session: S): Promise<unknown> {
      return fixture.insertOrder(session, order);
    }

    async update(order: Order, session: S): Promise<unknown> {
      return fixture.updateOrder(session, order, undefined);
    }
  }

  /** Creates an order and, through the decorated OrderService, its partner order: a nested call. */
  class PairService {
    constructor(
      readonly history: HistoryWriter<S>,
      readonly orders: OrderService,
    ) {}

    @Versioned({ clock })
    @HistoryTracked('history')
    async savePair(order: Order, session: S, partner: Order): Promise<void> {
      await fixture.insertOrder(session, order);
      await this.orders.save(partner, session);
    }
  }

  const history = new FailingHistory<S>(fixture.store);
  const orders = new OrderService(history);
  return {
    history,
    orders,
    unguarded: new UnguardedOrderService(history),
    pairs: new PairService(history, orders),
  };
}

/**
 * Runs the behaviour every database must show against one fixture. Without the database it
 * skips with the reason in the suite's name, unless `REQUIRE_DATABASES=1`, which makes it fail.
 *
 * ```ts
 * runBehaviourSuite(new PostgresFixture(process.env.DATABASE_URL));
 * ```
 */
export function runBehaviourSuite<S>(fixture: DatabaseFixture<S>): void {
  if (fixture.unavailable !== undefined && !REQUIRE_DATABASES) {
    describe.skip(`${fixture.name}: skipped because ${fixture.unavailable} (REQUIRE_DATABASES=1 makes this fail)`, () => {
      it('runs the shared behaviour suite', () => {});
    });
    return;
  }

  describe(`${fixture.name}: shared behaviour`, () => {
    let services: ReturnType<typeof orderServices<S>>;

    beforeAll(async () => {
      if (fixture.unavailable !== undefined) {
        throw new Error(`REQUIRE_DATABASES=1, but ${fixture.name} cannot run here: ${fixture.unavailable}.`);
      }
      await fixture.open();
      services = orderServices(fixture);
    });

    afterAll(async () => {
      await fixture.close();
    });

    async function withSession<R>(work: (session: S) => Promise<R>): Promise<R> {
      const session = await fixture.session();
      try {
        return await work(session);
      } finally {
        await fixture.release(session);
      }
    }

    it('save, update and delete record versions 1 to 3, and the store reads their snapshots back intact', async () => {
      const { orders } = services;
      const id = orderId();
      const since = new Date(Date.UTC(2020, 1, 29, 12, 30, 15, 250));
      const shippedAt = new Date(Date.UTC(2025, 11, 31, 23, 59, 59, 999));
      const order = new Order(id, 10, {
        customer: { name: 'Ada', since, tags: ['vip', 'eu'] },
        lines: [
          { sku: 'A-1', qty: 2, shippedAt: null },
          { sku: 'B-2', qty: 1, shippedAt },
        ],
      });

      await withSession(async (session) => {
        await orders.save(order, session);
        const created = structuredClone(order);
        expect(await fixture.readOrder(id)).toMatchObject({ id, total: 10, version: 1 });

        order.total = 20;
        order.lines?.push({ sku: 'C-3', qty: 5, shippedAt: null });
        await withHistoryContext(
          { actor: 'ada', reason: 'price change', metadata: { requestId: 'r-1', at: since } },
          () => orders.update(order, session),
        );
        const updated = structuredClone(order);
        expect(await fixture.readOrder(id)).toMatchObject({ id, total: 20, version: 2 });

        await orders.remove(order, session);
        expect(order.version).toBe(3);
        expect(await fixture.readOrder(id)).toBeUndefined();

        const entries = await fixture.store.list('Order', id);
        expect(entries.map((entry) => [entry.version, entry.op])).toEqual([
          [1, 'create'],
          [2, 'update'],
          [3, 'delete'],
        ]);
        const [first, second, third] = entries as [HistoryEntry<Order>, HistoryEntry<Order>, HistoryEntry<Order>];
        expect(first.snapshot).toEqual({ ...created });
        expect(first.snapshot.customer?.since).toBeInstanceOf(Date);
        expect(first.snapshot.customer?.since.getTime()).toBe(since.getTime());
        expect(first.snapshot.lines?.[1]?.shippedAt).toEqual(shippedAt);
        expect(first.timestamp).toEqual(created.timestamp);
        expect(second.snapshot).toEqual({ ...updated });
        expect(second).toMatchObject({
          actor: 'ada',
          reason: 'price change',
          metadata: { requestId: 'r-1', at: since },
        });
        expect(first.actor).toBeUndefined();
        expect(first.metadata).toBeUndefined();
        expect(new Set(entries.map((entry) => entry.txId)).size).toBe(3);

        expect(await fixture.store.at('Order', id, 2)).toEqual(second);
        expect(await fixture.store.at('Order', id, 4)).toBeUndefined();
        expect(await fixture.store.latest('Order', id)).toEqual(third);
        const t1 = (first.timestamp as Date).getTime();
        expect(await fixture.store.asOf('Order', id, new Date(t1 - 1))).toBeUndefined();
        expect((await fixture.store.asOf('Order', id, new Date(t1)))?.version).toBe(1);
        expect(
          (await fixture.store.asOf('Order', id, new Date((second.timestamp as Date).getTime() + 1)))?.version,
        ).toBe(2);
        expect((await fixture.store.asOf('Order', id, new Date(t1 + 86_400_000)))?.version).toBe(3);
        const versions = async (opts: Parameters<typeof fixture.store.list>[2]) =>
          (await fixture.store.list('Order', id, opts)).map((entry) => entry.version);
        expect(await versions({ fromVersion: 2 })).toEqual([2, 3]);
        expect(await versions({ toVersion: 2 })).toEqual([1, 2]);
        expect(await versions({ fromVersion: 2, limit: 1 })).toEqual([2]);
        expect(await versions({ limit: 0 })).toEqual([]);
        expect(await fixture.store.list('Order', 'no-such-order')).toEqual([]);
        expect(await fixture.store.latest('Order', 'no-such-order')).toBeUndefined();
        expect(await fixture.countHistory('Order', id)).toBe(3);
      });
    });

    it('a history write that fails after inserting leaves nothing in the database and restores the entity', async () => {
      const { orders, history } = services;
      const id = orderId();
      const order = new Order(id, 10);
      await withSession(async (session) => {
        await orders.save(order, session);
        const before = { ...order };
        const failure = new Error('history disk full');
        history.failAfterNextInsert = failure;
        order.total = 99;

        const error = await orders.update(order, session).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(HistoryWriteError);
        expect(error).toMatchObject({ code: 'HISTORY_WRITE_FAILED', entityId: id, version: 2 });
        expect((error as Error).cause).toBe(failure);
        expect({ ...order, total: before.total }).toEqual(before);
        expect(await fixture.readOrder(id)).toMatchObject({ total: 10, version: 1 });
        expect(await fixture.countHistory('Order', id)).toBe(1);
        expect(await fixture.isIdle(session)).toBe(true);
      });
    });

    it('a create whose history write fails after inserting leaves neither the row nor the entry', async () => {
      const { orders, history } = services;
      const id = orderId();
      const order = new Order(id, 10);
      history.failAfterNextInsert = new Error('history disk full');

      await withSession(async (session) => {
        await expect(orders.save(order, session)).rejects.toBeInstanceOf(HistoryWriteError);
      });

      expect(order.version).toBeUndefined();
      expect(order.timestamp).toBeUndefined();
      expect(await fixture.readOrder(id)).toBeUndefined();
      expect(await fixture.countHistory('Order', id)).toBe(0);
    });

    // One-connection databases (PGlite, SQLite in memory) race two calls on their one connection.
    it(
      fixture.concurrentSessions
        ? 'two sessions updating the same version at once: exactly one wins, the other gets VersionConflictError'
        : 'two calls updating the same version at once on the one connection: exactly one wins, the other gets VersionConflictError',
      async () => {
        const { orders } = services;
        const id = orderId();
        const order = new Order(id, 10);
        const [first, second] = [await fixture.session(), await fixture.session()];
        try {
          await orders.save(order, first);
          const racers = [
            Object.assign(new Order(id, 11), { version: 1 }),
            Object.assign(new Order(id, 12), { version: 1 }),
          ];

          const results = await Promise.allSettled([
            orders.update(racers[0] as Order, first),
            orders.update(racers[1] as Order, second),
          ]);

          const won = results.findIndex((result) => result.status === 'fulfilled');
          const lost = results.findIndex((result) => result.status === 'rejected');
          expect(won).toBeGreaterThanOrEqual(0);
          expect(lost).toBeGreaterThanOrEqual(0);
          const reason = (results[lost] as PromiseRejectedResult).reason;
          expect(reason).toBeInstanceOf(VersionConflictError);
          expect(reason).toMatchObject({ entityType: 'Order', entityId: id, expectedVersion: 1 });
          expect(racers[won]?.version).toBe(2);
          expect(racers[lost]?.version).toBe(1);
          expect(await fixture.readOrder(id)).toMatchObject({ version: 2, total: racers[won]?.total });
          expect((await fixture.store.list('Order', id)).map((entry) => entry.version)).toEqual([1, 2]);
          expect((await fixture.store.latest('Order', id))?.snapshot).toMatchObject({ total: racers[won]?.total });
          expect(await fixture.isIdle(first)).toBe(true);
          expect(await fixture.isIdle(second)).toBe(true);
        } finally {
          await fixture.release(first);
          await fixture.release(second);
        }
      },
    );

    it('an update whose SQL has no version guard still conflicts through the history key', async () => {
      const { orders, unguarded } = services;
      const id = orderId();
      const order = new Order(id, 10);
      await withSession(async (session) => {
        await orders.save(order, session);
        const stale = Object.assign(new Order(id, 10), { version: order.version });
        order.total = 20;
        await orders.update(order, session);
        stale.total = 30;

        const error = await unguarded.update(stale, session).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(VersionConflictError);
        expect(error).toMatchObject({ entityId: id, expectedVersion: 1 });
        expect(stale.version).toBe(1);
        expect(await fixture.readOrder(id)).toMatchObject({ total: 20, version: 2 });
        expect((await fixture.store.list('Order', id)).map((entry) => entry.version)).toEqual([1, 2]);
      });
    });

    it('a guarded update of a stale version is a VersionConflictError and changes nothing', async () => {
      const { orders } = services;
      const id = orderId();
      const order = new Order(id, 10);
      await withSession(async (session) => {
        await orders.save(order, session);
        const stale = Object.assign(new Order(id, 10), { version: 1 });
        order.total = 20;
        await orders.update(order, session);
        stale.total = 30;

        await expect(orders.update(stale, session)).rejects.toBeInstanceOf(VersionConflictError);

        expect(stale.version).toBe(1);
        expect(await fixture.readOrder(id)).toMatchObject({ total: 20, version: 2 });
        expect(await fixture.countHistory('Order', id)).toBe(2);
      });
    });

    it('saving an order whose id already exists is a VersionConflictError and keeps the first', async () => {
      const { orders } = services;
      const id = orderId();
      await withSession(async (session) => {
        await orders.save(new Order(id, 1), session);
        const duplicate = new Order(id, 2);

        await expect(orders.save(duplicate, session)).rejects.toBeInstanceOf(VersionConflictError);

        expect(duplicate.version).toBeUndefined();
        expect(await fixture.readOrder(id)).toMatchObject({ total: 1, version: 1 });
        expect(await fixture.countHistory('Order', id)).toBe(1);
      });
    });

    it('a transaction the caller began is joined, and the caller’s rollback discards both writes', async () => {
      const { orders } = services;
      const id = orderId();
      await withSession(async (session) => {
        await fixture.begin(session);
        try {
          await orders.save(new Order(id, 1), session);
          expect(await fixture.isIdle(session)).toBe(false);
        } finally {
          await fixture.rollback(session);
        }
        expect(await fixture.isIdle(session)).toBe(true);
      });

      expect(await fixture.readOrder(id)).toBeUndefined();
      expect(await fixture.countHistory('Order', id)).toBe(0);
    });

    it('a transaction the caller began and commits keeps every write of the calls that joined it', async () => {
      const { orders } = services;
      const [a, b] = [new Order(orderId(), 1), new Order(orderId(), 2)];
      await withSession(async (session) => {
        await fixture.begin(session);
        try {
          await orders.save(a, session);
          await orders.save(b, session);
          await fixture.commit(session);
        } catch (error) {
          await fixture.rollback(session);
          throw error;
        }
      });

      expect(await fixture.readOrder(a.id)).toMatchObject({ version: 1 });
      expect(await fixture.readOrder(b.id)).toMatchObject({ version: 1 });
      expect(await fixture.countHistory('Order', a.id)).toBe(1);
      expect(await fixture.countHistory('Order', b.id)).toBe(1);
    });

    it('nested decorated calls share one transaction and one txId', async () => {
      const { pairs } = services;
      const [order, partner] = [new Order(orderId(), 1), new Order(orderId(), 2)];

      await withSession((session) => pairs.savePair(order, session, partner));

      expect(await fixture.readOrder(order.id)).toMatchObject({ version: 1 });
      expect(await fixture.readOrder(partner.id)).toMatchObject({ version: 1 });
      const outer = await fixture.store.latest('Order', order.id);
      const inner = await fixture.store.latest('Order', partner.id);
      expect(outer?.txId).toBeDefined();
      expect(inner?.txId).toBe(outer?.txId);
    });

    it('a failure in a nested call rolls back the outer call’s writes too and restores both entities', async () => {
      const { orders, pairs } = services;
      const taken = orderId();
      await withSession((session) => orders.save(new Order(taken, 1), session));
      const [order, partner] = [new Order(orderId(), 1), new Order(taken, 2)];

      await withSession(async (session) => {
        await expect(pairs.savePair(order, session, partner)).rejects.toBeInstanceOf(VersionConflictError);
        expect(await fixture.isIdle(session)).toBe(true);
      });

      expect(order.version).toBeUndefined();
      expect(partner.version).toBeUndefined();
      expect(await fixture.readOrder(order.id)).toBeUndefined();
      expect(await fixture.countHistory('Order', order.id)).toBe(0);
      expect(await fixture.countHistory('Order', taken)).toBe(1);
    });

    it('the session is idle and usable after a successful call and after a failed one', async () => {
      const { orders } = services;
      const order = new Order(orderId(), 1);
      await withSession(async (session) => {
        await orders.save(order, session);
        expect(await fixture.isIdle(session)).toBe(true);

        await expect(
          orders.update(Object.assign(new Order(order.id, 5), { version: 7 }), session),
        ).rejects.toBeInstanceOf(VersionConflictError);
        expect(await fixture.isIdle(session)).toBe(true);

        order.total = 2;
        await orders.update(order, session);
        expect(await fixture.isIdle(session)).toBe(true);
      });
      expect(await fixture.readOrder(order.id)).toMatchObject({ total: 2, version: 2 });
    });

    it('the store’s own save, without a session, rejects a second entry of one version with VersionConflictError', async () => {
      const id = orderId();
      const entry: HistoryEntry = {
        entityType: 'Probe',
        entityId: id,
        version: 1,
        op: 'create',
        timestamp: new Date(Date.UTC(2026, 0, 1)),
        snapshot: { id, nested: { list: [1, 'two', null] } },
      };
      await fixture.store.save(entry);

      const error = await Promise.resolve()
        .then(() => fixture.store.save({ ...entry, snapshot: {} }))
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(VersionConflictError);
      expect(error).toMatchObject({ entityType: 'Probe', entityId: id });
      expect(await fixture.countHistory('Probe', id)).toBe(1);
      expect(await fixture.store.at('Probe', id, 1)).toEqual(entry);
    });

    it('asOf returns the entry with the latest timestamp not after the time, ties going to the highest version, even where timestamps do not follow versions', async () => {
      const id = orderId();
      const start = Date.UTC(2026, 0, 1);
      const stampsInSeconds = [0, 20, 10, 0];
      for (const [index, seconds] of stampsInSeconds.entries()) {
        await fixture.store.save({
          entityType: 'Probe',
          entityId: id,
          version: index + 1,
          op: index === 0 ? 'create' : 'update',
          timestamp: new Date(start + seconds * 1000),
          snapshot: { id, step: index + 1 },
        });
      }
      const asOf = async (seconds: number) =>
        (await fixture.store.asOf('Probe', id, new Date(start + seconds * 1000)))?.version;

      expect(await asOf(-1)).toBeUndefined();
      expect(await asOf(0)).toBe(4);
      expect(await asOf(5)).toBe(4);
      expect(await asOf(10)).toBe(3);
      expect(await asOf(19)).toBe(3);
      expect(await asOf(20)).toBe(2);
      expect(await asOf(3600)).toBe(2);
    });

    it('ensureSchema can run again over a table that holds entries', async () => {
      const id = orderId();
      await withSession((session) => services.orders.save(new Order(id, 1), session));

      await fixture.store.ensureSchema();
      await fixture.store.ensureSchema();

      expect((await fixture.store.latest('Order', id))?.version).toBe(1);
    });

    describeReading(fixture);
  });
}
