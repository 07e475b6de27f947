import { expect } from 'vitest';

function own(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  return target;
}

/**
 * An entity holding what the codec must carry exactly: objects that look like its tags, own
 * `__proto__` keys, lone surrogates and NUL in strings and keys, numbers JSON has no text for,
 * invalid and far Dates.
 */
export function trickySnapshot(): Record<string, unknown> {
  return {
    id: 'tricky',
    lookalike: { $date: '2020-01-01T00:00:00.000Z' },
    notADate: { $date: 'garbage' },
    escape: { $escape: { $date: 'x' } },
    entries: { $entries: [['a', 1]] },
    num: { $num: 'NaN' },
    str: { $str: ['a', 55296] },
    dollarOnly: { $foo: 1 },
    dollarAndMore: { $date: 'x', other: 1 },
    dotted: { 'a.b': 1, $c: 2 },
    protoHolder: own({ a: 1 }, '__proto__', { polluted: true }),
    protoPrimitive: own({}, '__proto__', 'text'),
    list: [own({}, '__proto__', 1), { $date: 'y' }, null, 'x'],
    lone: ['a\ud800', '\udc00b', '\ud800\ud800', 'ok\u{1F600}', 'nul\u0000nul', ''],
    keys: own(own(own({}, 'k\ud800', 1), 'n\u0000', 2), '\udfff', 3),
    numbers: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, 1e308, -5e-324, 2 ** 53],
    dates: [
      new Date(Number.NaN),
      new Date('0000-01-01T00:00:00.000Z'),
      new Date('-000001-06-01T00:00:00.000Z'),
      new Date(8.64e15),
      new Date(-8.64e15),
      new Date(0),
    ],
    nested: { deeper: { $date: '2021-02-03T04:05:06.789Z', $x: 1 }, when: new Date(1234567890123) },
  };
}

/** Exact equality: same own keys (any order), same prototypes, `Object.is` numbers, Dates by time. */
export function exactlyEqual(actual: unknown, expected: unknown, path = '(root)'): string | undefined {
  if (typeof expected !== 'object' || expected === null) {
    return Object.is(actual, expected) ? undefined : `${path}: ${String(actual)} is not ${String(expected)}`;
  }
  if (typeof actual !== 'object' || actual === null) return `${path}: ${String(actual)} is not an object`;
  if (Object.getPrototypeOf(actual) !== Object.getPrototypeOf(expected)) return `${path}: another prototype`;
  if (expected instanceof Date) {
    return Object.is((actual as Date).getTime(), expected.getTime()) ? undefined : `${path}: another time`;
  }
  const keys = Object.keys(expected).sort();
  const got = Object.keys(actual).sort();
  if (JSON.stringify(keys) !== JSON.stringify(got))
    return `${path}: keys ${JSON.stringify(got)} are not ${JSON.stringify(keys)}`;
  for (const key of keys) {
    const inner = exactlyEqual(
      (actual as Record<string, unknown>)[key],
      (expected as Record<string, unknown>)[key],
      `${path}.${JSON.stringify(key)}`,
    );
    if (inner !== undefined) return inner;
  }
  return undefined;
}

export function expectExact(actual: unknown, expected: unknown): void {
  expect(exactlyEqual(actual, expected)).toBeUndefined();
}
