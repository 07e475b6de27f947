import { describe, expect, it } from 'vitest';
import { HistoryTracked, InvalidEntityError, MemoryHistoryStore, Versioned } from '../../src/index.js';
import { historyRows } from '../support/fake-db.js';
import { Order, setup } from '../support/orders.js';

const withVersion = (version: unknown) => Object.assign(new Order('o1', 1), { version });

describe('invalid input is rejected before anything is called or written', () => {
  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a string', 'order'],
    ['an array', [new Order('o1', 1)]],
    ['a frozen entity', Object.freeze(new Order('o1', 1))],
  ])('save with %s as the entity', async (_, entity) => {
    const { db, session, service } = setup();
    const error = await service.save(entity as Order, session).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect(error).toMatchObject({ code: 'INVALID_ENTITY' });
    expect(service.calls).toEqual([]);
    expect(session.begins).toBe(0);
    expect(historyRows(db)).toEqual([]);
  });

  it.each([
    ['no version', withVersion(undefined)],
    ['a fractional version', withVersion(1.5)],
    ['a string version', withVersion('2')],
    ['a version below initialVersion', withVersion(0)],
    ['no id', Object.assign(withVersion(1), { id: undefined })],
  ])('update with %s', async (_, entity) => {
    const { session, service } = setup();
    const before = { ...entity };
    const error = await service.update(entity, session).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect((error as Error).message).toMatch(/OrderService\.update needs/);
    expect(service.calls).toEqual([]);
    expect(session.begins).toBe(0);
    expect({ ...entity }).toEqual(before);
  });

  it('a sealed entity without version fields cannot be stamped and is left as it was', async () => {
    const { session, service } = setup();
    const order = Object.seal({ id: 'o1', total: 1 });
    const error = await service.save(order as Order, session).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect((error as Error).message).toMatch(/Cannot stamp/);
    expect(service.calls).toEqual([]);
    expect(order).toEqual({ id: 'o1', total: 1 });
  });

  it('a created entity that still has no id after the method is rejected and rolled back', async () => {
    const { db, session, service } = setup();
    const order = { total: 1 } as Order;
    const error = await service.save(order, session).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect((error as Error).message).toMatch(/has no 'id'/);
    expect(session.rollbacks).toBe(1);
    expect(db.rows('orders')).toEqual([]);
  });

  it('falls back to _id when the entity has no id, reading ObjectId-like values as hex strings', async () => {
    const store = new MemoryHistoryStore();
    class DocumentService {
      @Versioned()
      @HistoryTracked(store)
      async save(_doc: object) {}
    }
    const service = new DocumentService();
    await service.save({ _id: { toHexString: () => '65a1f0' } });
    await service.save({ _id: 7 });
    expect(store.all().map((e) => e.entityId)).toEqual(['65a1f0', '7']);
  });
});
