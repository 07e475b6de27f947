import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentCall,
  currentSession,
  expectedVersion,
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { Order, orderId } from '../integration/behaviour.js';
import { REQUIRE_DATABASES, type SuiteStore } from '../integration/fixture.js';

/** A table name no other test file, project or process uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/**
 * One ORM on one database, as the ORM suite drives it: the user's repository code written with
 * the ORM, the ORM's own transaction API, and reads that bypass any session.
 */
export interface OrmCase<S> {
  readonly name: string;
  /** The adapter that must match the ORM's sessions. */
  readonly adapter: string;
  readonly unavailable: string | undefined;
  open(): Promise<void>;
  close(): Promise<void>;
  /** The root object (instance, database, client) for which the library opens the transaction. */
  readonly root: S;
  /** Whether the method runs with a transaction object in place of the root (all but Drizzle on SQLite, whose root is the connection). */
  readonly replacesRoot: boolean;
  /**
   * Whether calls joining a transaction the caller opened get its one txId. Not with Drizzle on
   * SQLite: as for a better-sqlite3 session, SQLite has no transaction id to read, so each call gets its own.
   */
  readonly sharesCallerTxId: boolean;
  readonly store: SuiteStore<unknown>;
  /** Runs `work` inside a transaction opened with the ORM's own API; rejects (rolling back) when it does. */
  transaction<R>(work: (tx: S) => Promise<R>): Promise<R>;
  insert(session: S, order: Order): Promise<unknown>;
  /** Guarded by the expected version; resolves what the default conflict check reads. */
  update(session: S, order: Order, expected: number | undefined): Promise<unknown>;
  read(id: string): Promise<{ total: number; version: number } | undefined>;
}

/** A row as the user's code would write it outside any decorated call: version 0, a timestamp. */
function row(id: string, total: number): Order {
  return Object.assign(new Order(id, total), { version: 0, timestamp: new Date() });
}

class ControlledHistory implements HistoryWriter {
  failNext = false;
  sessions: unknown[] = [];
  constructor(readonly store: HistoryWriter) {}
  async save(entry: HistoryEntry, session?: unknown): Promise<void> {
    this.sessions.push(session);
    await this.store.save(entry, session);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('history disk full');
    }
  }
}

/** The behaviour every ORM session must show; run once per ORM and database. */
export function runOrmSuite<S>(orm: OrmCase<S>): void {
  if (orm.unavailable !== undefined && !REQUIRE_DATABASES) {
    describe.skip(`${orm.name}: skipped because ${orm.unavailable} (REQUIRE_DATABASES=1 makes this fail)`, () => {
      it('runs the ORM suite', () => {});
    });
    return;
  }

  describe(`${orm.name}: ORM sessions`, () => {
    let history: ControlledHistory;
    let orders: {
      save(order: Order, session: S): Promise<unknown>;
      update(order: Order, session: S): Promise<unknown>;
    };
    const seen: unknown[] = [];

    beforeAll(async () => {
      if (orm.unavailable !== undefined)
        throw new Error(`REQUIRE_DATABASES=1, but ${orm.name} cannot run here: ${orm.unavailable}.`);
      await orm.open();
      history = new ControlledHistory(orm.store);

      @Versioned()
      @HistoryTracked('history', { entityType: 'Order' })
      class OrderService {
        constructor(readonly history: HistoryWriter) {}
        async save(order: Order, session: S): Promise<unknown> {
          seen.push(session, currentSession(), currentCall()?.txId);
          return orm.insert(session, order);
        }
        async update(order: Order, session: S): Promise<unknown> {
          return orm.update(session, order, expectedVersion(order));
        }
      }
      orders = new OrderService(history);
    });

    afterAll(async () => {
      await orm.close();
    });

    it(`the root object and a transaction are both sessions of the ${orm.adapter} adapter`, async () => {
      expect(findAdapter(orm.root)?.name).toBe(orm.adapter);
      await orm.transaction(async (tx) => {
        expect(findAdapter(tx)?.name).toBe(orm.adapter);
      });
    });

    it('given the root, the library opens the transaction and the method writes through it, history included', async () => {
      const order = new Order(orderId(), 10);
      seen.length = 0;
      await orders.save(order, orm.root);
      const [argument, ambient] = seen;
      if (orm.replacesRoot) expect(argument).not.toBe(orm.root);
      else expect(argument).toBe(orm.root);
      expect(ambient).toBe(argument);
      expect(history.sessions.at(-1)).toBe(argument);
      order.total = 12;
      await orders.update(order, orm.root);
      expect(await orm.read(order.id)).toEqual({ total: 12, version: 2 });
      expect((await orm.store.list('Order', order.id)).map((e) => [e.version, e.op])).toEqual([
        [1, 'create'],
        [2, 'update'],
      ]);
    });

    it('a history write that fails after inserting rolls back the row and the entry and restores the entity', async () => {
      const order = new Order(orderId(), 10);
      history.failNext = true;
      await expect(orders.save(order, orm.root)).rejects.toThrow('history disk full');
      expect(order.version).toBeUndefined();
      expect(await orm.read(order.id)).toBeUndefined();
      expect(await orm.store.list('Order', order.id)).toEqual([]);
    });

    it('calls inside the ORM’s own transaction join it, share its txId, and its rollback discards all their writes', async () => {
      const first = new Order(orderId(), 1);
      const second = new Order(orderId(), 2);
      await expect(
        orm.transaction(async (tx) => {
          await orders.save(first, tx);
          await orders.save(second, tx);
          const [one, two] = await Promise.all([
            orm.store.latest('Order', first.id),
            orm.store.latest('Order', second.id),
          ]);
          expect(one).toBeUndefined();
          expect(two).toBeUndefined();
          throw new Error('the caller changed its mind');
        }),
      ).rejects.toThrow('the caller changed its mind');
      expect(await orm.read(first.id)).toBeUndefined();
      expect(await orm.store.list('Order', second.id)).toEqual([]);

      await orm.transaction(async (tx) => {
        await orders.save(first, tx);
        await orders.save(second, tx);
      });
      const [a, b] = [await orm.store.latest('Order', first.id), await orm.store.latest('Order', second.id)];
      expect(a?.txId).toBeDefined();
      if (orm.sharesCallerTxId) expect(a?.txId).toBe(b?.txId);
      else expect(a?.txId).not.toBe(b?.txId);
    });

    it('join: a joined piece of work that fails leaves none of its writes; the caller commits the rest', async () => {
      const adapter = findAdapter(orm.root);
      const join = adapter?.join;
      if (adapter === undefined || join === undefined) throw new Error(`the ${orm.adapter} adapter has no join`);
      const run = <R>(tx: S, work: () => Promise<R>) => join.call(adapter, tx, work);
      const before = row(orderId(), 1);
      const dropped = row(orderId(), 2);
      const outer = row(orderId(), 3);
      const inner = row(orderId(), 4);
      const after = row(orderId(), 5);
      await orm.transaction(async (tx) => {
        await orm.insert(tx, before);
        await expect(
          run(tx, async () => {
            await orm.insert(tx, dropped);
            throw new Error('the joined work failed');
          }),
        ).rejects.toThrow('the joined work failed');
        // A database error inside the work (PostgreSQL then refuses every statement until rolled back).
        await expect(run(tx, () => orm.insert(tx, row(before.id, 9)))).rejects.toBeDefined();
        // Nested joins: the inner one's failure takes only its own writes.
        expect(
          await run(tx, async () => {
            await orm.insert(tx, outer);
            await expect(
              run(tx, async () => {
                await orm.insert(tx, inner);
                throw new Error('the inner work failed');
              }),
            ).rejects.toThrow('the inner work failed');
            return 'outer done';
          }),
        ).toBe('outer done');
        await orm.insert(tx, after);
      });
      expect(await orm.read(before.id)).toEqual({ total: 1, version: 0 });
      expect(await orm.read(dropped.id)).toBeUndefined();
      expect(await orm.read(outer.id)).toEqual({ total: 3, version: 0 });
      expect(await orm.read(inner.id)).toBeUndefined();
      expect(await orm.read(after.id)).toEqual({ total: 5, version: 0 });
    });

    it('join: concurrent joined work on one transaction runs one after the other, so one failure takes no other’s writes', async () => {
      const adapter = findAdapter(orm.root);
      const join = adapter?.join;
      if (adapter === undefined || join === undefined) throw new Error(`the ${orm.adapter} adapter has no join`);
      const failing = row(orderId(), 1);
      const kept = row(orderId(), 2);
      const order: string[] = [];
      await orm.transaction(async (tx) => {
        const results = await Promise.allSettled([
          join.call(adapter, tx, async () => {
            order.push('first starts');
            await orm.insert(tx, failing);
            await new Promise((resolve) => setTimeout(resolve, 20));
            order.push('first fails');
            throw new Error('first failed');
          }),
          join.call(adapter, tx, async () => {
            order.push('second starts');
            await orm.insert(tx, kept);
            return 'second done';
          }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
      });
      expect(order).toEqual(['first starts', 'first fails', 'second starts']);
      expect(await orm.read(failing.id)).toBeUndefined();
      expect(await orm.read(kept.id)).toEqual({ total: 2, version: 0 });
    });

    it('a decorated call joined to the caller’s transaction that fails keeps nothing; the caller commits the rest (needs the pipeline to call join)', async () => {
      const before = row(orderId(), 1);
      const failed = new Order(orderId(), 2);
      await orm.transaction(async (tx) => {
        await orm.insert(tx, before);
        history.failNext = true;
        await expect(orders.save(failed, tx)).rejects.toThrow('history disk full');
      });
      expect(await orm.read(before.id)).toEqual({ total: 1, version: 0 });
      expect(await orm.read(failed.id)).toBeUndefined();
      expect(await orm.store.list('Order', failed.id)).toEqual([]);
    });

    it('a guarded update of a stale version is a VersionConflictError and changes nothing', async () => {
      const order = new Order(orderId(), 10);
      await orders.save(order, orm.root);
      const stale = new Order(order.id, 99);
      stale.version = 1;
      await orders.update(Object.assign(new Order(order.id, 11), { version: 1 }), orm.root);
      await expect(orders.update(stale, orm.root)).rejects.toBeInstanceOf(VersionConflictError);
      expect(stale.version).toBe(1);
      expect(await orm.read(order.id)).toEqual({ total: 11, version: 2 });
    });

    it('saving an id that exists is a VersionConflictError classified from the database’s unique violation', async () => {
      const order = new Order(orderId(), 10);
      await orders.save(order, orm.root);
      const error = await orders.save(new Order(order.id, 20), orm.root).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(VersionConflictError);
      expect(await orm.read(order.id)).toEqual({ total: 10, version: 1 });
      expect((await orm.store.list('Order', order.id)).length).toBe(1);
    });
  });
}
