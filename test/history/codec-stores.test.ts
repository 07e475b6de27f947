import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';
import * as mariadb from 'mariadb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainEntry } from '../../src/history/chain.js';
import {
  type HistoryEntry,
  type HistoryReader,
  type HistoryWriter,
  InvalidEntityError,
  MemoryHistoryStore,
  takeSnapshot,
  verifyHistory,
} from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore, pgAdapter, pgliteAdapter } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { writeLast } from '../../src/transactions/final-statement.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { openTarget, plainClient, uniqueName } from '../mongodb/target.js';
import { connectionOptions, MYSQL_URL } from '../mysql/support.js';
import { expectExact, trickySnapshot } from './exact.js';

const DATABASE_URL = process.env.DATABASE_URL;

type Store = HistoryWriter & HistoryReader;

/** One store under test: opened fresh (its own table or collection), with a way to close it. */
interface StoreKit {
  readonly store: Store;
  /** Writes the entry the other way the store has (PostgreSQL's inlined INSERT sent with COMMIT). */
  readonly saveByStatement?: (entry: HistoryEntry) => Promise<void>;
  close(): Promise<void>;
}

interface StoreCase {
  readonly name: string;
  /** Why it cannot run here, or undefined. */
  readonly missing: string | undefined;
  open(): Promise<StoreKit>;
}

const cases: StoreCase[] = [
  {
    name: 'memory',
    missing: undefined,
    open: async () => ({ store: new MemoryHistoryStore(), close: async () => {} }),
  },
  {
    name: 'SQLite (better-sqlite3)',
    missing: undefined,
    open: async () => {
      const db = new Database(':memory:');
      const store = new SqliteHistoryStore(db, { table: 'codec_history' });
      await store.ensureSchema();
      return { store, close: async () => void db.close() };
    },
  },
  {
    name: 'PostgreSQL (pg)',
    missing: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    open: async () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
      const table = uniqueName('codec_history');
      const store = new PostgresHistoryStore(pool, { table });
      await store.ensureSchema();
      return {
        store,
        // As an owned decorated call writes it: the INSERT handed to the pg adapter, sent with COMMIT.
        saveByStatement: async (entry) => {
          const client = await pool.connect();
          try {
            await pgAdapter.run(client, () =>
              writeLast(
                client,
                (error) => error,
                () => store.save(entry, client),
              ),
            );
          } finally {
            client.release();
          }
        },
        close: async () => {
          await pool.query(`DROP TABLE IF EXISTS "${table}"`);
          await pool.end();
        },
      };
    },
  },
  {
    name: 'PGlite',
    missing: undefined,
    open: async () => {
      const db = new PGlite();
      const store = new PostgresHistoryStore(db, { table: 'codec_history' });
      await store.ensureSchema();
      return {
        store,
        // Through the PGlite adapter's transaction, as an owned decorated call writes it.
        saveByStatement: async (entry) => {
          await pgliteAdapter.run(db, () =>
            writeLast(
              db,
              (error) => error,
              () => store.save(entry, db),
            ),
          );
        },
        close: () => db.close(),
      };
    },
  },
  {
    name: 'MariaDB (mysql2)',
    missing: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    open: async () => {
      const pool = mysql.createPool({ ...connectionOptions(), connectionLimit: 2 });
      const table = uniqueName('codec_history');
      const store = new MysqlHistoryStore(pool, { table });
      await store.ensureSchema();
      return {
        store,
        close: async () => {
          await pool.query(`DROP TABLE IF EXISTS \`${table}\``);
          await pool.end();
        },
      };
    },
  },
  {
    name: 'MariaDB (mariadb)',
    missing: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    open: async () => {
      const pool = mariadb.createPool({ ...connectionOptions(), connectionLimit: 2 });
      const table = uniqueName('codec_history');
      const store = new MysqlHistoryStore(pool, { table });
      await store.ensureSchema();
      return {
        store,
        close: async () => {
          await pool.query(`DROP TABLE IF EXISTS \`${table}\``);
          await pool.end();
        },
      };
    },
  },
  {
    name: 'MongoDB',
    missing: undefined,
    open: async () => {
      const target = await openTarget();
      const client = plainClient(target.url);
      await client.connect();
      const db = client.db(uniqueName('eh_codec'));
      const store = new MongoHistoryStore(db, { collection: uniqueName('history') });
      await store.ensureSchema();
      return {
        store,
        close: async () => {
          await db.dropDatabase().catch(() => {});
          await client.close();
          await target.close();
        },
      };
    },
  },
];

let counter = 0;

function entry(overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  counter += 1;
  return {
    entityType: 'Thing',
    entityId: `t${counter}`,
    version: 1,
    op: 'create',
    timestamp: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
    snapshot: { id: `t${counter}` },
    ...overrides,
  };
}

for (const store of cases) {
  if (store.missing !== undefined && !REQUIRE_DATABASES) {
    describe.skip(`exact snapshots on ${store.name}: skipped because ${store.missing} (REQUIRE_DATABASES=1 makes this fail)`, () => {
      it('needs its server', () => {});
    });
    continue;
  }
  describe(`exact snapshots on ${store.name}`, () => {
    let kit: StoreKit;
    beforeAll(async () => {
      if (store.missing !== undefined) throw new Error(`REQUIRE_DATABASES=1, but ${store.missing}.`);
      kit = await store.open();
    }, 120_000);
    afterAll(() => kit?.close());

    const ways: [string, (entry: HistoryEntry) => Promise<void>][] = [
      ['save', async (e) => void (await kit.store.save(e))],
      ['the inlined INSERT', (e) => (kit.saveByStatement as (entry: HistoryEntry) => Promise<void>)(e)],
    ];
    for (const [way, write] of store.name.startsWith('P') ? ways : ways.slice(0, 1)) {
      it(`reads back, through ${way}, exactly the snapshot and metadata written, and their chain verifies`, async () => {
        const snapshot = takeSnapshot(trickySnapshot());
        const first = chainEntry(
          entry({ snapshot, metadata: takeSnapshot({ note: { $date: 'x' }, odd: 'a\ud800', n: Number.NaN }) }),
          undefined,
        );
        const second = chainEntry({ ...first, version: 2, op: 'update', snapshot: { ...snapshot, extra: -0 } }, first);
        await write(first);
        await write(second);

        const [one, two] = await kit.store.list(first.entityType, first.entityId);
        expectExact(one?.snapshot, first.snapshot);
        expectExact(one?.metadata, first.metadata);
        expectExact(two?.snapshot, second.snapshot);
        expectExact((await kit.store.at(first.entityType, first.entityId, 1))?.snapshot, first.snapshot);
        expectExact((await kit.store.latest(first.entityType, first.entityId))?.snapshot, second.snapshot);
        const back = (one?.snapshot ?? {}) as Record<string, unknown>;
        expect(back.lookalike).not.toBeInstanceOf(Date);
        expect(Object.getPrototypeOf(back.protoHolder)).toBe(Object.prototype);
        expect(await verifyHistory(kit.store, first.entityType, first.entityId)).toMatchObject({
          ok: true,
          entries: 2,
          unchained: 0,
        });
      });

      it(`rejects, through ${way}, an actor, reason, id, type or tx id with a lone surrogate or NUL, writing nothing`, async () => {
        const bad = ['a\ud800', '\udc00b', 'x\u0000y'];
        for (const text of bad) {
          for (const field of ['actor', 'reason', 'txId', 'entityId', 'entityType'] as const) {
            const rejected = entry({ [field]: text });
            await expect(write(rejected), `${field} ${JSON.stringify(text)}`).rejects.toBeInstanceOf(
              InvalidEntityError,
            );
            // What a database would have kept instead (U+FFFD for a lone surrogate) is not there either;
            // an id with a NUL cannot even be looked up in PostgreSQL.
            const kept = (value: string) => (value as string & { toWellFormed(): string }).toWellFormed();
            if (!text.includes('\u0000')) {
              expect(await kit.store.list(kept(rejected.entityType), kept(rejected.entityId))).toEqual([]);
            }
          }
        }
        const fine = entry({ actor: 'ad\u{1F600}a', reason: 'é' });
        await write(fine);
        expect((await kit.store.latest(fine.entityType, fine.entityId))?.actor).toBe('ad\u{1F600}a');
      });

      it(`accepts timestamps from 1000 to 9999 exactly and rejects years 0, 999 and 10000 through ${way}`, async () => {
        for (const time of ['0000-01-01T00:00:00.000Z', '0999-12-31T23:59:59.999Z', '+010000-01-01T00:00:00.000Z']) {
          const rejected = entry({ timestamp: new Date(time) });
          await expect(write(rejected), time).rejects.toBeInstanceOf(InvalidEntityError);
          expect(await kit.store.list(rejected.entityType, rejected.entityId)).toEqual([]);
        }
        await expect(write(entry({ timestamp: new Date(Number.NaN) }))).rejects.toBeInstanceOf(InvalidEntityError);
        for (const time of ['1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
          const kept = entry({ timestamp: new Date(time), snapshot: { at: new Date('0000-06-15T12:00:00.000Z') } });
          await write(kept);
          const back = await kit.store.latest(kept.entityType, kept.entityId);
          expect(back?.timestamp.toISOString()).toBe(time);
          expectExact(back?.snapshot, kept.snapshot);
        }
      });
    }
  });
}
