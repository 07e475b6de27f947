import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJson, encodeJson } from '../../src/history/codec.js';
import { takeSnapshot } from '../../src/index.js';
import { exactlyEqual } from './exact.js';

/** Keys that stress the codec: tag names, `$`-keys, `__proto__`, lone surrogates, NUL, dots. */
const key = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
  fc.constantFrom(
    '$date',
    '$num',
    '$str',
    '$entries',
    '$escape',
    '$x',
    '__proto__',
    'constructor',
    'a.b',
    '\ud800',
    '\u0000',
  ),
);

const leaf = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ maxLength: 8 }),
  fc.double(),
  fc.integer(),
  fc.constantFrom(-0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, null, true, false),
  fc.date({ noInvalidDate: false }),
  fc.constantFrom('2020-01-01T00:00:00.000Z', 'Invalid Date', 'NaN', '-0'),
);

function own(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    Object.defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
  }
  return out;
}

const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map(own),
}));

/** Objects whose only key is a tag, with tag-shaped bodies, to try to pass for tags. */
const lookalike = fc
  .tuple(
    fc.constantFrom('$date', '$num', '$str', '$entries', '$escape'),
    fc.oneof(value, fc.constantFrom('NaN', 'x', [], [['a', 1]], ['a', 55296], '2020-01-01T00:00:00.000Z')),
  )
  .map(([k, v]) => own([[k, v]]));

describe('the snapshot codec', () => {
  it('decodeJson(encodeJson(x)) is exactly x for any snapshot takeSnapshot gives (bounded: 400 runs, 5 s)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.oneof(value, lookalike)), { maxLength: 6 }), (fields) => {
        const snapshot = takeSnapshot(own(fields));
        const text = encodeJson(snapshot);
        // The text is plain, well-formed JSON without NUL or lone-surrogate escapes (PostgreSQL's jsonb takes it).
        expect(text).not.toMatch(
          /\\u0000|\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i,
        );
        expect(exactlyEqual(decodeJson(text), snapshot)).toBeUndefined();
        expect(exactlyEqual(decodeJson(JSON.parse(text)), snapshot)).toBeUndefined();
      }),
      { numRuns: 400, interruptAfterTimeLimit: 5_000 },
    );
  });

  it('still reads rows written before: { "$date": iso } is a Date, other $-objects are themselves', () => {
    const old = decodeJson(
      '{"at":{"$date":"2020-01-02T03:04:05.678Z"},"odd":{"$foo":1},"n":{"$num":"nope"}}',
    ) as Record<string, unknown>;
    expect(old.at).toEqual(new Date('2020-01-02T03:04:05.678Z'));
    expect(old.odd).toEqual({ $foo: 1 });
    expect(old.n).toEqual({ $num: 'nope' });
    expect(encodeJson({ at: new Date(0), plain: { a: 1 } })).toBe(
      '{"at":{"$date":"1970-01-01T00:00:00.000Z"},"plain":{"a":1}}',
    );
  });
});
