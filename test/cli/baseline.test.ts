import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { baselineCommand } from '../../src/cli/baseline.js';
import type { CliIo } from '../../src/cli/main.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { MYSQL_URL, uniqueTable } from '../mysql/support.js';

const DATABASE_URL = process.env.DATABASE_URL;

interface Target {
  readonly name: string;
  readonly unavailable: string | undefined;
  readonly url: () => string;
  /** Runs SQL (with `?` placeholders) on the database. */
  readonly exec: (sql: string, values?: unknown[]) => Promise<void>;
  readonly close: () => Promise<void>;
}

const dir = mkdtempSync(join(tmpdir(), 'eh-baseline-'));
const sqlitePath = join(dir, 'app.db');
let sqlite: Database.Database | undefined;
let pgPool: pg.Pool | undefined;
let myPool: mysql.Pool | undefined;

const targets: Target[] = [
  {
    name: 'SQLite',
    unavailable: undefined,
    url: () => `sqlite:${sqlitePath}`,
    exec: async (sql, values = []) => {
      sqlite ??= new Database(sqlitePath);
      sqlite.prepare(sql).run(...values);
    },
    close: async () => {
      sqlite?.close();
    },
  },
  {
    name: 'PostgreSQL',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    url: () => DATABASE_URL ?? '',
    exec: async (sql, values = []) => {
      pgPool ??= new pg.Pool({ connectionString: DATABASE_URL });
      let n = 0;
      await pgPool.query(
        sql.replace(/\?/g, () => `$${++n}`),
        values,
      );
    },
    close: async () => pgPool?.end(),
  },
  {
    name: 'MariaDB',
    unavailable: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    url: () => MYSQL_URL ?? '',
    exec: async (sql, values = []) => {
      myPool ??= mysql.createPool({ uri: MYSQL_URL });
      await myPool.query(sql, values);
    },
    close: async () => myPool?.end(),
  },
];

afterAll(async () => {
  for (const target of targets) await target.close();
  rmSync(dir, { recursive: true, force: true });
});

function io(tty: boolean): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text), isTTY: tty },
    env: {},
  };
}

for (const target of targets) {
  describe(`event-history baseline on ${target.name}`, () => {
    if (target.unavailable !== undefined) {
      if (REQUIRE_DATABASES) it(`needs ${target.name}`, () => expect.fail(target.unavailable));
      else
        describe.skip(`${target.name}: skipped because ${target.unavailable}`, () => it('needs the server', () => {}));
      return;
    }
    const from = uniqueTable('articles');
    const history = uniqueTable('history');

    it('writes one baseline entry per row in batches, at the row version (0 for null), and resumes by skipping rows that have history', async () => {
      await target.exec(`CREATE TABLE ${from} (id INTEGER PRIMARY KEY, title VARCHAR(50), version INTEGER)`);
      for (let id = 1; id <= 23; id++) {
        await target.exec(`INSERT INTO ${from} (id, title, version) VALUES (?, ?, ?)`, [
          id,
          `t${id}`,
          id % 3 === 0 ? null : id % 3 === 1 ? 0 : 4,
        ]);
      }
      const args = ['Article', '--url', target.url(), '--from', from, '--table', history, '--batch', '5'];
      const first = io(false);
      expect(await baselineCommand(args, first)).toBe(0);
      expect(first.err).toEqual([]);
      expect(first.out.join('')).toMatch(/23 rows, 23 baseline entries written, 0 skipped/);

      // An interrupted run: the history of the last rows is gone; run again, only they are written.
      await target.exec(`DELETE FROM ${history} WHERE entity_id IN ('21', '22', '23')`);
      await target.exec(`INSERT INTO ${from} (id, title, version) VALUES (?, ?, ?)`, [24, 't24', 2]);
      const second = io(true);
      expect(await baselineCommand(args, second)).toBe(0);
      expect(second.out.join('')).toMatch(/24 rows, 4 baseline entries written, 20 skipped/);
      expect(second.err.join('')).toMatch(/\r24\/24 rows \(100%\), \d+ rows\/s, [\d.]+s left/);
      expect(second.err.join('')).toMatch(/\r10\/24 rows \(41%\)/);
    });

    it('records each row’s state and version, marked as a baseline', async () => {
      const { PostgresHistoryStore } = await import('../../src/postgres/index.js');
      const { MysqlHistoryStore } = await import('../../src/mysql/index.js');
      const { SqliteHistoryStore } = await import('../../src/sqlite/index.js');
      const store =
        target.name === 'SQLite'
          ? new SqliteHistoryStore(new Database(sqlitePath), { table: history })
          : target.name === 'PostgreSQL'
            ? new PostgresHistoryStore(pgPool as pg.Pool, { table: history })
            : new MysqlHistoryStore(myPool as mysql.Pool, { table: history });
      const [zero] = await store.list('Article', '1');
      const [nulled] = await store.list('Article', '3');
      const [four] = await store.list('Article', '2');
      expect(zero).toMatchObject({
        version: 0,
        op: 'create',
        metadata: { baseline: true },
        snapshot: { id: 1, title: 't1' },
      });
      expect(nulled).toMatchObject({ version: 0, snapshot: { id: 3, version: null } });
      expect(four).toMatchObject({ version: 4, snapshot: { id: 2, title: 't2', version: 4 } });
    });

    it('refuses an unsafe table name before connecting', async () => {
      const out = io(false);
      expect(await baselineCommand(['Article', '--url', target.url(), '--from', 'x; DROP TABLE y'], out)).toBe(2);
      expect(out.err.join('')).toMatch(/not a safe identifier/);
    });
  });
}
