import { describe, expect, it } from 'vitest';
import { canonicalJson, diff, hashEntry } from '../../src/index.js';

describe('diff', () => {
  it('reports added, removed and changed fields of nested objects by dotted path, in key order', () => {
    expect(diff({ b: 1, a: { x: 1, y: 2 }, gone: true }, { a: { x: 1, y: 3, z: 0 }, b: 1, added: 'new' })).toEqual([
      { path: 'a.y', kind: 'change', before: 2, after: 3 },
      { path: 'a.z', kind: 'add', after: 0 },
      { path: 'added', kind: 'add', after: 'new' },
      { path: 'gone', kind: 'remove', before: true },
    ]);
  });

  it('compares array elements by index when they have no id', () => {
    expect(diff({ tags: ['a', 'b', 'c'] }, { tags: ['a', 'x'] })).toEqual([
      { path: 'tags[1]', kind: 'change', before: 'b', after: 'x' },
      { path: 'tags[2]', kind: 'remove', before: 'c' },
    ]);
  });

  it('matches array elements by id when every element has a distinct one, so an insertion is one add', () => {
    const before = [
      { id: 1, qty: 1 },
      { id: 2, qty: 2 },
    ];
    const after = [
      { id: 3, qty: 3 },
      { id: 1, qty: 1 },
      { id: 2, qty: 5 },
    ];
    expect(diff({ lines: before }, { lines: after })).toEqual([
      { path: 'lines[id=2].qty', kind: 'change', before: 2, after: 5 },
      { path: 'lines[id=3]', kind: 'add', after: { id: 3, qty: 3 } },
    ]);
    expect(diff({ lines: [{ id: 'a' }, { id: 'a' }] }, { lines: [{ id: 'a' }] })).toEqual([
      { path: 'lines[1]', kind: 'remove', before: { id: 'a' } },
    ]);
  });

  it('compares Dates by value and reports a change of type at the path where it happens', () => {
    expect(diff({ at: new Date(0) }, { at: new Date(0) })).toEqual([]);
    expect(diff({ at: new Date(0) }, { at: new Date(1) })).toEqual([
      { path: 'at', kind: 'change', before: new Date(0), after: new Date(1) },
    ]);
    expect(diff({ v: { a: 1 } }, { v: [1] })).toEqual([{ path: 'v', kind: 'change', before: { a: 1 }, after: [1] }]);
    expect(diff(1, 2)).toEqual([{ path: '(root)', kind: 'change', before: 1, after: 2 }]);
  });

  it('treats NaN as equal to NaN and an undefined field as absent', () => {
    expect(diff({ n: Number.NaN, u: undefined }, { n: Number.NaN })).toEqual([]);
    expect(diff({ u: undefined }, { u: null })).toEqual([{ path: 'u', kind: 'add', after: null }]);
  });
});

describe('canonicalJson and hashEntry', () => {
  const entry = {
    entityType: 'Order',
    entityId: '1',
    version: 1,
    op: 'create' as const,
    timestamp: new Date(0),
    snapshot: { b: 1, a: [{ y: 1, x: new Date(5) }] },
  };

  it('give the same text and hash whatever order the keys come in, and leave the hash itself out', () => {
    const reordered = {
      timestamp: new Date(0),
      snapshot: { a: [{ x: new Date(5), y: 1 }], b: 1 },
      version: 1,
      op: 'create' as const,
      entityId: '1',
      entityType: 'Order',
    };
    expect(canonicalJson({ b: 1, a: new Date(0) })).toBe('{"a":{"$date":"1970-01-01T00:00:00.000Z"},"b":1}');
    expect(hashEntry(reordered)).toBe(hashEntry(entry));
    expect(hashEntry({ ...entry, hash: 'anything' })).toBe(hashEntry(entry));
    expect(hashEntry({ ...entry, prevHash: 'f'.repeat(64) })).not.toBe(hashEntry(entry));
    expect(hashEntry({ ...entry, snapshot: { ...entry.snapshot, b: 2 } })).not.toBe(hashEntry(entry));
  });
});
