import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/history/chain.js';
import { sameValue } from '../../src/history/diff.js';
import { HistoryTracked, MemoryHistoryStore, takeSnapshot, upcastReader, Versioned } from '../../src/index.js';
import { tickingClock } from '../support/orders.js';

class Basket {
  version?: number;
  timestamp?: Date;
  constructor(
    readonly id: string,
    public lines: { id: number; qty: number }[],
  ) {}
}

function basketService(store: MemoryHistoryStore) {
  @Versioned({ clock: tickingClock(), requireSession: false })
  @HistoryTracked(store, { onUnchanged: 'skip' })
  class BasketService {
    updates = 0;
    async save(_basket: Basket): Promise<void> {}
    async update(_basket: Basket): Promise<void> {
      this.updates += 1;
    }
  }
  return new BasketService();
}

describe("onUnchanged: 'skip' compares exactly", () => {
  it('calls and records an update that only reorders an array of objects with ids, and still skips a real no-op', async () => {
    const store = new MemoryHistoryStore();
    const baskets = basketService(store);
    const basket = new Basket('b1', [
      { id: 1, qty: 1 },
      { id: 2, qty: 2 },
    ]);
    await baskets.save(basket);

    basket.lines = [...basket.lines].reverse();
    await baskets.update(basket);

    expect(baskets.updates).toBe(1);
    expect(basket.version).toBe(2);
    expect((await store.latest('Basket', 'b1'))?.snapshot).toMatchObject({ lines: [{ id: 2 }, { id: 1 }] });
    await baskets.update(basket);
    expect(baskets.updates).toBe(1);
    expect(basket.version).toBe(2);
  });

  it('sameValue: order of arrays counts, order of keys does not; NaN equals NaN, -0 is not 0, Dates by time', () => {
    expect(sameValue([{ id: 1 }, { id: 2 }], [{ id: 2 }, { id: 1 }])).toBe(false);
    expect(sameValue({ a: 1, b: [new Date(5)] }, { b: [new Date(5)], a: 1 })).toBe(true);
    expect(sameValue({ a: Number.NaN }, { a: Number.NaN })).toBe(true);
    expect(sameValue({ a: -0 }, { a: 0 })).toBe(false);
    expect(sameValue({ a: undefined, b: 1 }, { b: 1 })).toBe(true);
    expect(sameValue({ a: new Date(1) }, { a: { getTime: () => 1 } })).toBe(false);
    expect(sameValue({ toString: 1 }, {})).toBe(false);
    expect(sameValue({}, { toString: 1 })).toBe(false);
  });
});

describe('upcastReader looks upcasters up among own properties only', () => {
  it('leaves entries of types named toString, valueOf, constructor or __proto__ unchanged', async () => {
    const store = new MemoryHistoryStore();
    for (const entityType of ['toString', 'valueOf', 'constructor', 'hasOwnProperty', '__proto__', 'Order']) {
      store.save({
        entityType,
        entityId: '1',
        version: 1,
        op: 'create',
        timestamp: new Date(0),
        snapshot: { id: '1' },
      });
    }
    const reader = upcastReader(store, { Order: (snapshot) => ({ ...snapshot, upcast: true }) });
    for (const entityType of ['toString', 'valueOf', 'constructor', 'hasOwnProperty', '__proto__']) {
      expect((await reader.latest(entityType, '1'))?.snapshot, entityType).toEqual({ id: '1' });
    }
    expect((await reader.latest('Order', '1'))?.snapshot).toEqual({ id: '1', upcast: true });
  });
});

describe('snapshot keys are own keys', () => {
  it('copies an own __proto__ key as a field, and ignore/redact paths never reach Object.prototype', () => {
    const entity = { a: 1 };
    Object.defineProperty(entity, '__proto__', {
      value: { b: 2 },
      enumerable: true,
      configurable: true,
      writable: true,
    });
    const copy = takeSnapshot(entity, ['__proto__.b', 'constructor.name', 'toString'], ['valueOf', 'hasOwnProperty']);
    expect(Object.keys(copy)).toEqual(['a', '__proto__']);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.hasOwn(copy, 'valueOf')).toBe(false);
    expect(Object.hasOwn(copy, 'hasOwnProperty')).toBe(false);
    expect(typeof Object.prototype.toString).toBe('function');
    expect(JSON.stringify(copy)).toBe('{"a":1,"__proto__":{}}');
    const masked = takeSnapshot(entity, [], ['__proto__']);
    expect(Object.getOwnPropertyDescriptor(masked, '__proto__')?.value).toBe('[redacted]');
  });

  it('canonicalJson hashes __proto__ as a key, an invalid Date, and cannot confuse a Date with { $date }', () => {
    const withProto = JSON.parse('{"__proto__":{"x":1},"a":1}');
    expect(canonicalJson(withProto)).toBe('{"__proto__":{"x":1},"a":1}');
    expect(canonicalJson({ at: new Date(Number.NaN) })).toBe('{"at":{"$date":"Invalid Date"}}');
    const date = new Date(0);
    expect(canonicalJson({ at: date })).not.toBe(canonicalJson({ at: { $date: date.toISOString() } }));
    expect(canonicalJson({ at: { $escape: 1 } })).not.toBe(canonicalJson({ at: 1 }));
    // Unchanged for everything else, so hashes written before stay valid.
    expect(canonicalJson({ b: 1, a: date, c: [undefined, 'x'], d: { $other: 1 } })).toBe(
      '{"a":{"$date":"1970-01-01T00:00:00.000Z"},"b":1,"c":[null,"x"],"d":{"$other":1}}',
    );
  });
});
