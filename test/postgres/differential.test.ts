import { isDeepStrictEqual } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type HistoryEntry, HistoryWriteError, InvalidEntityError } from '../../src/index.js';
import { PostgresHistoryStore, type PostgresQueryable, pgAdapter, pgliteAdapter } from '../../src/postgres/index.js';
import type { TransactionAdapter } from '../../src/transactions/adapter.js';
import { writeLast } from '../../src/transactions/final-statement.js';
import { useFigures } from '../reliability/support/figures.js';
import { suiteNeeding } from '../support/skip.js';
import { uniqueTable } from './shared.js';

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
const MAX_ENTRIES = 150;
const MAX_MS = 20_000;

/**
 * Strings that try to break out of a literal: quotes, backslashes, dollar quotes, comments, and
 * multibyte lead bytes (U+0095 is C2 95 in UTF-8, and 95 5C is one SJIS character) before a
 * backslash and a quote.
 */
const hostile = (canary: string) => [
  `'); DROP TABLE ${canary}; --`,
  `\u00bf'; DROP TABLE ${canary}; --`,
  `\u0095\\', NULL, NULL, NULL, NULL, NULL, NULL); DROP TABLE ${canary}; --`,
  `\\'); DROP TABLE ${canary}; --`,
  `$$; DROP TABLE ${canary}; $$`,
  `$tag$'$tag$; DROP TABLE ${canary}; --`,
  `E'\\x27'`,
  "\\\\\\'",
  '\u{10FFFF}\u{1F600}\u{E000}\uFFFD\u00A0',
];

/**
 * Text the store must carry exactly. Excluded, by the store's documented rules: NUL (entry fields
 * with one are an InvalidEntityError before anything is written, tested below; the codec carries a
 * NUL inside a snapshot as a tag, also tested below), lone surrogates (UTF-8
 * cannot encode them; the codec's rule), '__proto__' keys and single '$date' keys (the codec's
 * tags), and -0 (JSON has no negative zero).
 */
function text(canary: string, huge = true): fc.Arbitrary<string> {
  const arbitraries: fc.WeightedArbitrary<string>[] = [
    { weight: 10, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 5, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    { weight: 5, arbitrary: fc.constantFrom(...hostile(canary)) },
    {
      weight: 5,
      arbitrary: fc
        .tuple(fc.constantFrom(...hostile(canary)), fc.string({ unit: 'binary', maxLength: 8 }))
        .map(([a, b]) => a + b),
    },
  ];
  // Rare and only outside the indexed columns: 6 000 quotes and backslashes, 60 000 UTF-16 units.
  if (huge) {
    arbitraries.push({ weight: 1, arbitrary: fc.constant('\\'.repeat(3000) + "'".repeat(3000)) });
    arbitraries.push({ weight: 1, arbitrary: fc.constant('界\u{1F600}'.repeat(20_000)) });
  }
  return fc.oneof(...arbitraries).map((s) => s.replaceAll('\u0000', '\u2400'));
}

function value(canary: string): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    text(canary),
    fc.constantFrom(0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 31, -(2 ** 31), 1e308, 5e-324),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
    fc.boolean(),
    fc.constant(null),
    fc.date({ min: new Date(-62135596800000), max: new Date(253402300799999), noInvalidDate: true }),
  );
  const key = text(canary).filter((k) => k !== '__proto__' && k !== '$date');
  return fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      leaf,
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(key, tie('node'), { maxKeys: 4 }),
    ),
  })).node;
}

function entries(canary: string): fc.Arbitrary<Omit<HistoryEntry, 'entityId'> & { id: string }> {
  const t = text(canary);
  // The indexed columns hold at most a B-tree page's third: no huge values there.
  const indexed = text(canary, false);
  return fc.record(
    {
      entityType: indexed.filter((s) => s.length > 0),
      id: indexed,
      version: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      op: fc.constantFrom('create' as const, 'update' as const, 'delete' as const),
      // The range every store keeps (the codec's rule: MySQL's DATETIME range).
      timestamp: fc.date({ min: new Date(Date.UTC(1000, 0, 1)), max: new Date(253402300799999), noInvalidDate: true }),
      snapshot: fc.dictionary(
        t.filter((k) => k !== '__proto__' && k !== '$date'),
        value(canary),
        { maxKeys: 5 },
      ),
      actor: t,
      reason: t,
      metadata: fc.dictionary(
        t.filter((k) => k !== '__proto__' && k !== '$date'),
        value(canary),
        { maxKeys: 3 },
      ),
      txId: indexed,
      schemaVersion: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      hash: t,
      prevHash: t,
    },
    { requiredKeys: ['entityType', 'id', 'version', 'op', 'timestamp', 'snapshot'] },
  );
}

const fail = (error: unknown) => new HistoryWriteError('differential', '?', 0, error);
// Also run by the reliability suite (test/reliability/differential.reliability.ts), whose report lists these.
const figures = useFigures('differential-postgres');

suite('Differential: every write path reads back the entry, whatever the session settings', () => {
  let pool: pg.Pool;
  let client: pg.Client;
  let single: pg.Pool;
  let lite: PGlite;
  const table = uniqueTable('diff_history');
  const canary = uniqueTable('canary');

  beforeAll(async () => {
    if (!DATABASE_URL) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    single = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    lite = await PGlite.create();
    for (const db of [pool, lite] as { query(text: string): Promise<unknown> }[]) {
      await db.query(`CREATE TABLE ${canary} (alive boolean)`);
      await new PostgresHistoryStore(db as PostgresQueryable, { table }).ensureSchema();
    }
  }, 60_000);

  afterAll(async () => {
    await pool?.query(`DROP TABLE IF EXISTS ${table}, ${canary}`).catch(() => undefined);
    await Promise.all([pool?.end(), single?.end(), client?.end(), lite?.close()]);
  });

  it(`writes up to ${MAX_ENTRIES} random entries (or ${MAX_MS / 1000} s) through each path under each setting: mismatches 0, canary alive`, async () => {
    // Every client_encoding the server accepts (client-only ones included), each with the
    // settings that change how a literal is read, and UTF8 under every combination of them.
    const encodings: string[] = [];
    const probe = await pool.connect();
    try {
      const { rows } = await probe.query(
        "SELECT DISTINCT pg_encoding_to_char(i) AS name FROM generate_series(0, 63) AS i WHERE pg_encoding_to_char(i) <> ''",
      );
      for (const { name } of rows as { name: string }[]) {
        try {
          await probe.query(`SET client_encoding = '${name}'`);
          encodings.push(name);
        } catch {
          // Not a client encoding for this server (no conversion from UTF8).
        }
      }
    } finally {
      await probe.query('RESET ALL').catch(() => undefined);
      probe.release();
    }
    expect(encodings).toEqual(expect.arrayContaining(['UTF8', 'SJIS', 'BIG5', 'GBK', 'GB18030']));
    const settings: string[] = [];
    for (const scs of ['on', 'off']) {
      for (const bq of ['on', 'off', 'safe_encoding']) {
        settings.push(
          `SET client_encoding = 'UTF8'; SET standard_conforming_strings = ${scs}; SET backslash_quote = ${bq}`,
        );
      }
    }
    const LITERAL_SETTINGS = settings.length;
    for (const name of encodings) {
      settings.push(`SET client_encoding = '${name}'; SET standard_conforming_strings = off; SET backslash_quote = on`);
    }

    const pgStore = new PostgresHistoryStore(client, { table });
    const poolStore = new PostgresHistoryStore(single, { table });
    const liteStore = new PostgresHistoryStore(lite, { table });
    const reader = new PostgresHistoryStore(pool, { table });
    type Path = {
      name: string;
      write: (entry: HistoryEntry, setting: string) => Promise<void>;
      store: PostgresHistoryStore;
    };
    const paths: Path[] = [
      {
        name: 'pg Client, owned',
        store: reader,
        write: async (entry, setting) => {
          await client.query(setting);
          await pgAdapter.run(client, () => writeLast(client, fail, () => pgStore.save(entry, client)));
        },
      },
      {
        name: 'pg Client, joined',
        store: reader,
        write: async (entry, setting) => {
          await client.query(setting);
          await client.query('BEGIN');
          await pgJoin(client, () => writeLast(client, fail, () => pgStore.save(entry, client)));
          await client.query('COMMIT');
        },
      },
      {
        name: 'pg Client, no session',
        store: reader,
        write: async (entry, setting) => {
          await client.query(setting);
          await pgStore.save(entry);
        },
      },
      {
        name: 'PoolClient, owned and joined',
        store: reader,
        write: async (entry, setting) => {
          const pooled = await pool.connect();
          try {
            await pooled.query(setting);
            await pgAdapter.run(pooled, () => writeLast(pooled, fail, () => pgStore.save(entry, pooled)));
            await pooled.query('BEGIN');
            await pgJoin(pooled, () =>
              writeLast(pooled, fail, () => pgStore.save({ ...entry, entityId: `${entry.entityId}+j` }, pooled)),
            );
            await pooled.query('COMMIT');
          } finally {
            await pooled.query('RESET ALL');
            pooled.release();
          }
        },
      },
      {
        name: 'Pool, no session',
        store: reader,
        write: async (entry, setting) => {
          await single.query(setting);
          await poolStore.save(entry);
        },
      },
      {
        name: 'PGlite, owned, joined and no session',
        store: liteStore,
        write: async (entry, setting) => {
          // PGlite's client always speaks UTF8; it takes the literal settings.
          await lite.exec(setting.replace(/SET client_encoding = '[^']*'; /, ''));
          await pgliteAdapter.run(lite, () => writeLast(lite, fail, () => liteStore.save(entry, lite)));
          await lite.exec('BEGIN');
          await pgliteJoin(lite, () =>
            writeLast(lite, fail, () => liteStore.save({ ...entry, entityId: `${entry.entityId}+j` }, lite)),
          );
          await lite.exec('COMMIT');
          await liteStore.save({ ...entry, entityId: `${entry.entityId}+n` });
        },
      },
    ];
    const suffixes: Record<string, string[]> = {
      'PoolClient, owned and joined': ['', '+j'],
      'PGlite, owned, joined and no session': ['', '+j', '+n'],
    };

    const seed = Number(process.env.DIFFERENTIAL_SEED ?? Date.now() % 2 ** 31);
    const samples = fc.sample(entries(canary), { numRuns: MAX_ENTRIES, seed });
    const started = Date.now();
    let written = 0;
    let mismatches = 0;
    const usedSettings = new Set<string>();
    for (const [n, sample] of samples.entries()) {
      if (Date.now() - started > MAX_MS) break;
      const setting = settings[n % settings.length] as string;
      usedSettings.add(setting);
      for (const [p, path] of paths.entries()) {
        const { id, ...rest } = sample;
        const entry = { ...rest, entityId: `${id}#${n}.${p}` } as HistoryEntry;
        // PGlite (slow, and always UTF8 on its side) under the literal settings only.
        if (path.store === liteStore && n % settings.length >= LITERAL_SETTINGS) continue;
        await path.write(entry, setting);
        for (const suffix of suffixes[path.name] ?? ['']) {
          const expected = { ...entry, entityId: entry.entityId + suffix };
          const read = await path.store.at(expected.entityType, expected.entityId, expected.version);
          try {
            expect(read).toEqual(expected);
          } catch (error) {
            mismatches++;
            const differing = Object.keys(expected).filter(
              (key) =>
                !isDeepStrictEqual(
                  (read as unknown as Record<string, unknown>)?.[key],
                  (expected as unknown as Record<string, unknown>)[key],
                ),
            );
            const show = (v: unknown) => JSON.stringify(v)?.slice(0, 400);
            if (process.env.DIFFERENTIAL_DUMP) {
              const { writeFileSync } = await import('node:fs');
              writeFileSync(
                process.env.DIFFERENTIAL_DUMP,
                JSON.stringify({ expected, read }, (_k, x) =>
                  typeof x === 'string' ? [...x].map((c) => c.codePointAt(0)) : x,
                ),
              );
            }
            throw new Error(
              `${path.name} under "${setting}" (DIFFERENTIAL_SEED=${seed}, entry ${n}) read back another entry (${(error as Error).message.slice(0, 80)}): ` +
                differing
                  .map(
                    (key) =>
                      `${key}: wrote ${show((expected as unknown as Record<string, unknown>)[key])}, read ${show((read as unknown as Record<string, unknown>)?.[key])}`,
                  )
                  .join('; '),
            );
          }
        }
      }
      written++;
    }

    expect(await reader.connection.query(`SELECT to_regclass('${canary}') IS NOT NULL AS alive`)).toMatchObject({
      rows: [{ alive: true }],
    });
    expect((await lite.query(`SELECT to_regclass('${canary}') IS NOT NULL AS alive`)).rows).toEqual([{ alive: true }]);
    expect(written).toBeGreaterThanOrEqual(Math.min(MAX_ENTRIES, settings.length));
    console.log(
      `DIFFERENTIAL postgres: entries=${written} settings=${usedSettings.size}/${settings.length} paths=9 mismatches=${mismatches}`,
    );
    const where = 'PostgreSQL (pg, PGlite)';
    figures.add('differential', 'random entries, each written through every path', where, written);
    figures.add(
      'differential',
      'session settings tried (standard_conforming_strings, backslash_quote, client_encoding)',
      where,
      usedSettings.size,
    );
    figures.add('differential', 'write paths (owned, joined, no session; Client, Pool, PGlite)', where, 9);
    figures.add('differential', 'read-back mismatches', where, mismatches);
    figures.add('differential', 'canary tables lost', where, 0);
  }, 60_000);

  it('carries a NUL inside a snapshot on every path, and refuses one in an entry field before writing', async () => {
    const entry: HistoryEntry = {
      entityType: 'Order',
      entityId: `nul-${Date.now()}`,
      version: 1,
      op: 'create',
      timestamp: new Date(),
      snapshot: { note: 'a\u0000b' },
    };
    const pgStore = new PostgresHistoryStore(client, { table });
    const liteStore = new PostgresHistoryStore(lite, { table });
    await pgAdapter.run(client, () => writeLast(client, fail, () => pgStore.save(entry, client)));
    await pgStore.save({ ...entry, version: 2 });
    await liteStore.save({ ...entry, version: 3 });
    expect((await pgStore.list('Order', entry.entityId)).map((e) => e.snapshot)).toEqual([
      { note: 'a\u0000b' },
      { note: 'a\u0000b' },
    ]);
    expect((await liteStore.latest('Order', entry.entityId))?.snapshot).toEqual({ note: 'a\u0000b' });

    const bad: HistoryEntry = { ...entry, entityId: `nul-actor-${Date.now()}`, actor: 'a\u0000b' };
    const errors = [
      await pgAdapter.run(client, () => writeLast(client, fail, () => pgStore.save(bad, client))).catch((e) => e),
      await pgStore.save(bad).catch((e) => e),
      await liteStore.save(bad).catch((e) => e),
    ];
    for (const error of errors) expect(error).toBeInstanceOf(InvalidEntityError);
    expect(await pgStore.latest('Order', bad.entityId)).toBeUndefined();
  });
});
