import { describe, expect, it } from 'vitest';
import { takeSnapshot } from '../../src/index.js';

describe('takeSnapshot', () => {
  it('copies a field named like a setter on Object.prototype as an own field, without calling the setter; __proto__ too', () => {
    const calls: unknown[] = [];
    Object.defineProperty(Object.prototype, 'polluted', {
      configurable: true,
      set(value: unknown) {
        calls.push(value);
      },
    });
    try {
      const entity = JSON.parse('{"polluted": 1, "__proto__": {"admin": true}, "nested": {"polluted": 2}}');
      const copy = takeSnapshot(entity) as Record<string, unknown>;
      expect(calls).toEqual([]);
      expect(Object.getOwnPropertyDescriptor(copy, 'polluted')?.value).toBe(1);
      expect(Object.getOwnPropertyDescriptor(copy.nested, 'polluted')?.value).toBe(2);
      expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value).toEqual({ admin: true });
    } finally {
      delete (Object.prototype as { polluted?: unknown }).polluted;
    }
  });

  it('copies deeply and keeps Dates as Dates', () => {
    const entity = { at: new Date(5), nested: { list: [1, { deep: true }] } };
    const copy = takeSnapshot(entity);
    expect(copy).toEqual(entity);
    expect(copy.at).not.toBe(entity.at);
    expect(copy.nested).not.toBe(entity.nested);
  });

  it('turns Maps, Sets, BigInts, typed arrays and toJSON values into JSON-safe data', () => {
    const copy = takeSnapshot({
      byName: new Map([['a', 1]]),
      byKey: new Map<unknown, number>([[1, 2]]),
      tags: new Set(['x', 'y']),
      big: 12345678901234567890n,
      bytes: new Uint8Array([1, 2]),
      oid: { toJSON: () => '65a1f0' },
      skipped: () => 1,
      missing: undefined,
      [Symbol('hidden')]: 1,
    });
    expect(copy).toEqual({
      byName: { a: 1 },
      byKey: [[1, 2]],
      tags: ['x', 'y'],
      big: '12345678901234567890',
      bytes: [1, 2],
      oid: '65a1f0',
    });
  });

  it('removes ignored paths and masks redacted ones, also through arrays, without touching the entity', () => {
    const entity = { secret: 's', items: [{ price: 1, cost: 2 }], card: { number: '4111' } };
    const copy = takeSnapshot(entity, ['items.cost'], ['secret', 'card.number', 'absent.path']);
    expect(copy).toEqual({ secret: '[redacted]', items: [{ price: 1 }], card: { number: '[redacted]' } });
    expect(entity).toEqual({ secret: 's', items: [{ price: 1, cost: 2 }], card: { number: '4111' } });
  });

  it('makes 64-bit typed arrays and functions inside arrays JSON-safe too (strings, null)', () => {
    expect(takeSnapshot({ big: new BigInt64Array([1n, -2n]), mixed: [() => 1, undefined, 'a'] })).toEqual({
      big: ['1', '-2'],
      mixed: [null, null, 'a'],
    });
  });

  it('checks maxBytes against about the length of the copy’s JSON text, counted while copying', () => {
    const entity = { note: 'x'.repeat(1000), at: new Date(0), list: [1, null, () => 1], gone: undefined };
    const json = JSON.stringify(takeSnapshot(entity)).length;
    expect(() => takeSnapshot(entity, [], [], Math.ceil(json * 1.05))).not.toThrow();
    expect(() => takeSnapshot(entity, [], [], Math.floor(json * 0.95))).toThrow(
      /about \d+ bytes, more than the \d+ allowed/,
    );
    // Ignored fields are removed after the check: the limit is about what the entity holds.
    expect(() => takeSnapshot(entity, ['note'], [], 50)).toThrow(/maxSnapshotBytes/);
  });

  it('copies a value shared by two fields twice, but rejects a cycle', () => {
    const shared = { n: 1 };
    expect(takeSnapshot({ a: shared, b: shared })).toEqual({ a: { n: 1 }, b: { n: 1 } });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = { back: cyclic };
    expect(() => takeSnapshot(cyclic)).toThrow(/cycle/);
  });
});
