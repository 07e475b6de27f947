import { describe, expect, it } from 'vitest';
import {
  diff,
  expectedVersion,
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  RevertError,
  revert,
  upcastReader,
  VersionConflictError,
  Versioned,
  verifyHistory,
  withHistoryContext,
} from '../../src/index.js';
import { tickingClock } from '../support/orders.js';
import { Order, orderId, orderServices } from './behaviour.js';
import type { DatabaseFixture } from './fixture.js';

const METHODS = { save: 'create', update: 'update', remove: 'delete' } as const;

/** Services of the reading tests, writing straight to the fixture's store (which is also their reader). */
function readingServices<S>(fixture: DatabaseFixture<S>) {
  const clock = tickingClock();

  @Versioned({ methods: METHODS, clock })
  @HistoryTracked('history', { methods: METHODS, onUnchanged: 'skip', ignore: ['cache'] })
  class SkippingOrderService {
    calls = 0;
    constructor(readonly history: HistoryWriter<S>) {}

    async save(order: Order, session: S): Promise<unknown> {
      return fixture.insertOrder(session, order);
    }

    async update(order: Order, session: S): Promise<unknown> {
      this.calls += 1;
      return fixture.updateOrder(session, order, expectedVersion(order));
    }

    async remove(order: Order, session: S): Promise<unknown> {
      return fixture.deleteOrder(session, order, expectedVersion(order));
    }
  }

  @Versioned({ methods: METHODS, clock })
  @HistoryTracked('history', { methods: METHODS, chain: true, schemaVersion: 2 })
  class ChainedOrderService {
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

  return {
    skipping: new SkippingOrderService(fixture.store),
    chained: new ChainedOrderService(fixture.store),
    ...orderServices(fixture),
  };
}

/**
 * The reading features every store must show: pagination, byTransaction, changes, revert and
 * restore, onUnchanged: 'skip', the hash chain with tamper detection, and schema versions.
 * Runs inside the shared behaviour suite, after its `beforeAll` opened the fixture.
 */
export function describeReading<S>(fixture: DatabaseFixture<S>): void {
  describe('reading, comparing, reverting and trusting history', () => {
    let services: ReturnType<typeof readingServices<S>> | undefined;
    const use = () => {
      services ??= readingServices(fixture);
      return services;
    };

    async function withSession<R>(work: (session: S) => Promise<R>): Promise<R> {
      const session = await fixture.session();
      try {
        return await work(session);
      } finally {
        await fixture.release(session);
      }
    }

    /** An order saved and updated through `service` until it is at `versions`, totals 10, 20, 30, … */
    async function orderAt(
      service: { save(o: Order, s: S): Promise<unknown>; update(o: Order, s: S): Promise<unknown> },
      versions: number,
      session: S,
    ): Promise<Order> {
      const order = new Order(orderId(), 10);
      await service.save(order, session);
      for (let v = 2; v <= versions; v++) {
        order.total = v * 10;
        await service.update(order, session);
      }
      return order;
    }

    it('page walks the history by version cursor forwards and backwards, with next until the last page', async () => {
      const { orders } = use();
      const store = fixture.store;
      const order = await withSession((session) => orderAt(orders, 5, session));
      const walk = async (first: Parameters<typeof store.page>[2]) => {
        const pages: number[][] = [];
        let page = await store.page('Order', order.id, first);
        for (;;) {
          pages.push(page.entries.map((entry) => entry.version));
          if (page.next === undefined) return pages;
          page = await store.page('Order', order.id, page.next);
        }
      };

      expect(await walk({ limit: 2 })).toEqual([[1, 2], [3, 4], [5]]);
      expect(await walk({ direction: 'backward', limit: 2 })).toEqual([[5, 4], [3, 2], [1]]);
      expect(await walk({ after: 3, limit: 5 })).toEqual([[4, 5]]);
      expect(await walk({ before: 3, limit: 1 })).toEqual([[2], [1]]);
      const { entries } = await store.page('Order', order.id, { after: 4 });
      expect(entries[0]?.snapshot).toMatchObject({ id: order.id, total: 50, version: 5 });
      expect(await store.page('Order', 'no-such-order', { limit: 3 })).toEqual({ entries: [] });
      expect((await store.list('Order', order.id, { order: 'desc', limit: 2 })).map((e) => e.version)).toEqual([5, 4]);
    });

    it('byTransaction returns everything one transaction wrote, across entity types, by type, id and version', async () => {
      const { pairs } = use();
      const [order, partner] = [new Order(orderId(), 1), new Order(orderId(), 2)];
      await withSession((session) => pairs.savePair(order, session, partner));
      const txId = (await fixture.store.latest('Order', order.id))?.txId as string;
      const at = new Date(Date.UTC(2026, 0, 1));
      const invoice: HistoryEntry = {
        entityType: 'Invoice',
        entityId: order.id,
        version: 1,
        op: 'create',
        timestamp: at,
        snapshot: { amount: 1 },
        txId,
      };
      await fixture.store.save(invoice);

      const together = await fixture.store.byTransaction(txId);

      const ids = [order.id, partner.id].sort();
      expect(together.map((entry) => [entry.entityType, entry.entityId, entry.version])).toEqual([
        ['Invoice', order.id, 1],
        ['Order', ids[0], 1],
        ['Order', ids[1], 1],
      ]);
      expect(together[0]).toEqual(invoice);
      expect(await fixture.store.byTransaction('no-such-transaction')).toEqual([]);
    });

    it('entityTypes and entityIds list what the store holds, each once, in code point order, by exact prefix and id cursor', async () => {
      const type = `Catalog${orderId().replace(/[^0-9a-z]/gi, '')}`;
      const ids = ['b-2', 'a-1', 'a-10', 'a-2', 'c', 'x.%_1', 'xy%1', 'X.1'];
      const at = new Date(Date.UTC(2026, 0, 1));
      for (const entityId of ids) {
        const versions = entityId === 'a-1' ? 3 : 1;
        for (let version = 1; version <= versions; version++) {
          await fixture.store.save({ entityType: type, entityId, version, op: 'update', timestamp: at, snapshot: {} });
        }
      }
      await fixture.store.save({
        entityType: `${type}B`,
        entityId: 'a-1',
        version: 1,
        op: 'create',
        timestamp: at,
        snapshot: {},
      });
      const { entityIds } = fixture.store;
      const idsOf = (opts?: Parameters<typeof entityIds>[1]) => fixture.store.entityIds(type, opts);

      const types = await fixture.store.entityTypes();
      expect(types.filter((name) => name.startsWith(type))).toEqual([type, `${type}B`]);
      expect(new Set(types).size).toBe(types.length);
      expect(await idsOf()).toEqual(['X.1', 'a-1', 'a-10', 'a-2', 'b-2', 'c', 'x.%_1', 'xy%1']);
      expect(await idsOf({ prefix: 'a-1' })).toEqual(['a-1', 'a-10']);
      expect(await idsOf({ prefix: 'x.' })).toEqual(['x.%_1']);
      expect(await idsOf({ prefix: 'x' })).toEqual(['x.%_1', 'xy%1']);
      expect(await idsOf({ prefix: '%' })).toEqual([]);
      expect(await idsOf({ prefix: 'A-' })).toEqual([]);
      expect(await idsOf({ after: 'a-10', limit: 2 })).toEqual(['a-2', 'b-2']);
      expect(await idsOf({ prefix: 'a-', after: 'a-1' })).toEqual(['a-10', 'a-2']);
      expect(await idsOf({ limit: 0 })).toEqual([]);
      expect(await fixture.store.entityIds(type.toLowerCase())).toEqual([]);
      expect(await fixture.store.entityIds(`${type}B`)).toEqual(['a-1']);
    });

    it('changes yields each version with its field-level differences from the one before', async () => {
      const { orders } = use();
      const since = new Date(Date.UTC(2021, 5, 1));
      const order = new Order(orderId(), 10, {
        customer: { name: 'Ada', since, tags: ['vip'] },
        lines: [{ sku: 'A-1', qty: 1, shippedAt: null }],
      });
      await withSession(async (session) => {
        await orders.save(order, session);
        order.total = 12;
        order.customer = { name: 'Ada L.', since: new Date(since.getTime()), tags: ['vip', 'eu'] };
        order.lines?.push({ sku: 'B-2', qty: 2, shippedAt: null });
        await orders.update(order, session);
        await orders.remove(order, session);
      });

      const seen = [];
      for await (const step of fixture.store.changes('Order', order.id)) seen.push(step);

      expect(seen.map((step) => [step.entry.version, step.previousVersion])).toEqual([
        [1, undefined],
        [2, 1],
        [3, 2],
      ]);
      expect(seen[0]?.changes.map((change) => [change.path, change.kind])).toEqual(
        expect.arrayContaining([
          ['id', 'add'],
          ['total', 'add'],
          ['customer', 'add'],
        ]),
      );
      const ignoreStamp = (changes: { path: string }[]) =>
        changes.filter((change) => change.path !== 'version' && change.path !== 'timestamp');
      expect(ignoreStamp(seen[1]?.changes ?? [])).toEqual([
        { path: 'customer.name', kind: 'change', before: 'Ada', after: 'Ada L.' },
        { path: 'customer.tags[1]', kind: 'add', after: 'eu' },
        { path: 'lines[1]', kind: 'add', after: { sku: 'B-2', qty: 2, shippedAt: null } },
        { path: 'total', kind: 'change', before: 10, after: 12 },
      ]);
      expect(seen[1]?.changes.find((change) => change.path === 'version')).toMatchObject({ before: 1, after: 2 });
      expect(ignoreStamp(seen[2]?.changes ?? [])).toEqual([]);
      expect(seen[2]?.entry.op).toBe('delete');
      expect(diff(seen[0]?.entry.snapshot, seen[1]?.entry.snapshot)).toEqual(seen[1]?.changes);
    });

    it('revert puts an old version back through the decorated update, recorded as a new version with reason revert to vN', async () => {
      const { orders } = use();
      await withSession(async (session) => {
        const order = await orderAt(orders, 3, session);
        const v1 = await fixture.store.at('Order', order.id, 1);

        const reverted = await withHistoryContext({ actor: 'ada' }, () =>
          revert(orders, order, 1, session, { reader: fixture.store }),
        );

        expect(reverted).toBe(order);
        expect(order).toMatchObject({ total: 10, version: 4 });
        expect(await fixture.readOrder(order.id)).toMatchObject({ total: 10, version: 4 });
        const latest = await fixture.store.latest('Order', order.id);
        expect(latest).toMatchObject({ version: 4, op: 'update', reason: 'revert to v1', actor: 'ada' });
        expect(diff(v1?.snapshot, latest?.snapshot).map((change) => change.path)).toEqual(['timestamp', 'version']);

        const stale = Object.assign(new Order(order.id, 99), { version: 2 });
        await expect(revert(orders, stale, 1, session, { reader: fixture.store })).rejects.toBeInstanceOf(
          VersionConflictError,
        );
        expect(stale).toEqual(Object.assign(new Order(order.id, 99), { version: 2 }));
        const missing = await revert(orders, order, 99, session, { reader: fixture.store }).catch((e: unknown) => e);
        expect(missing).toBeInstanceOf(RevertError);
        expect(missing).toMatchObject({ code: 'REVERT_FAILED', entityId: order.id, toVersion: 99 });
        expect(await fixture.countHistory('Order', order.id)).toBe(4);
      });
    });

    it('revert restores a deleted entity from its tombstone through the decorated save, continuing its versions', async () => {
      const { chained } = use();
      await withSession(async (session) => {
        const order = await orderAt(chained, 2, session);
        await chained.remove(order, session);
        expect(await fixture.readOrder(order.id)).toBeUndefined();

        // The chained service's writer is the store, which is also a reader: no { reader } needed.
        await revert(chained, order, 3, session);

        expect(order).toMatchObject({ total: 20, version: 4 });
        expect(await fixture.readOrder(order.id)).toMatchObject({ total: 20, version: 4 });
        expect(await fixture.store.latest('Order', order.id)).toMatchObject({
          version: 4,
          op: 'create',
          reason: 'revert to v3',
        });
        expect(await verifyHistory(fixture.store, 'Order', order.id)).toMatchObject({
          ok: true,
          entries: 4,
          unchained: 0,
          anchored: true,
        });
      });
    });

    it("onUnchanged: 'skip' writes nothing for an update that changes no tracked field, and records a real change", async () => {
      const { skipping } = use();
      await withSession(async (session) => {
        const order = Object.assign(new Order(orderId(), 10), { cache: 1 });
        await skipping.save(order, session);
        const stamped = order.timestamp;

        order.cache = 2;
        await expect(skipping.update(order, session)).resolves.toBeUndefined();

        expect(skipping.calls).toBe(0);
        expect(order).toMatchObject({ version: 1, timestamp: stamped });
        expect(await fixture.countHistory('Order', order.id)).toBe(1);
        expect(await fixture.isIdle(session)).toBe(true);

        order.total = 11;
        await skipping.update(order, session);

        expect(skipping.calls).toBe(1);
        expect(order.version).toBe(2);
        expect(await fixture.readOrder(order.id)).toMatchObject({ total: 11, version: 2 });
        expect((await fixture.store.list('Order', order.id)).map((entry) => entry.version)).toEqual([1, 2]);

        const stale = Object.assign(new Order(order.id, 10), { version: 1 });
        await expect(skipping.update(stale, session)).rejects.toBeInstanceOf(VersionConflictError);
      });
    });

    it('a chained history verifies, and each kind of tampering with the stored rows is found at its version', async () => {
      const { chained } = use();
      const [altered, removed, inserted, truncated] = await withSession(async (session) => [
        await orderAt(chained, 3, session),
        await orderAt(chained, 3, session),
        await orderAt(chained, 3, session),
        await orderAt(chained, 3, session),
      ]);
      const entries = await fixture.store.list('Order', altered.id);
      expect(entries.map((entry) => entry.prevHash)).toEqual([undefined, entries[0]?.hash, entries[1]?.hash]);
      expect(entries.every((entry) => /^[0-9a-f]{64}$/.test(entry.hash ?? ''))).toBe(true);
      for (const order of [altered, removed, inserted]) {
        expect(await verifyHistory(fixture.store, 'Order', order.id)).toMatchObject({
          ok: true,
          entries: 3,
          unchained: 0,
          chained: true,
          anchored: true,
          findings: [],
        });
      }

      await fixture.tamper.setTotal('Order', altered.id, 2, 999);
      await fixture.tamper.remove('Order', removed.id, 2);
      await fixture.tamper.insert('Order', inserted.id, 4, 40);
      await fixture.tamper.remove('Order', truncated.id, 3);

      expect(await verifyHistory(fixture.store, 'Order', altered.id)).toMatchObject({
        ok: false,
        version: 2,
        kind: 'altered',
      });
      expect(await verifyHistory(fixture.store, 'Order', removed.id)).toMatchObject({
        ok: false,
        version: 2,
        kind: 'removed',
      });
      expect(await verifyHistory(fixture.store, 'Order', inserted.id)).toMatchObject({
        ok: false,
        version: 4,
        kind: 'inserted',
      });
      // The head anchors version 3: deleting it is found without being told the entity's version.
      expect(await verifyHistory(fixture.store, 'Order', truncated.id)).toMatchObject({
        ok: false,
        version: 3,
        kind: 'removed',
      });
      expect(await verifyHistory(fixture.store, 'Order', truncated.id, { latestVersion: 3 })).toMatchObject({
        ok: false,
        version: 3,
        kind: 'removed',
      });
    });

    it('entries carry their schemaVersion, and upcastReader brings older snapshots to the current shape', async () => {
      const { orders, chained } = use();
      const [v1Shape, v2Shape] = await withSession(async (session) => [
        await orderAt(orders, 2, session),
        await orderAt(chained, 1, session),
      ]);
      const reader = upcastReader(fixture.store, {
        Order: (snapshot, schemaVersion) =>
          schemaVersion < 2 ? { ...snapshot, currency: 'EUR', total: Number(snapshot.total) * 100 } : snapshot,
      });

      expect((await fixture.store.latest('Order', v1Shape.id))?.schemaVersion).toBeUndefined();
      expect((await fixture.store.latest('Order', v2Shape.id))?.schemaVersion).toBe(2);
      expect((await reader.latest('Order', v1Shape.id))?.snapshot).toMatchObject({ currency: 'EUR', total: 2000 });
      expect((await reader.at('Order', v2Shape.id, 1))?.snapshot).not.toHaveProperty('currency');
      expect((await reader.list('Order', v1Shape.id)).map((entry) => (entry.snapshot as Order).total)).toEqual([
        1000, 2000,
      ]);
      const { entries } = await reader.page('Order', v1Shape.id, { direction: 'backward', limit: 1 });
      expect(entries[0]?.snapshot).toMatchObject({ currency: 'EUR' });
      const steps = [];
      for await (const step of reader.changes('Order', v1Shape.id)) steps.push(step);
      expect(steps[1]?.changes.find((change) => change.path === 'total')).toMatchObject({ before: 1000, after: 2000 });
    });
  });
}
