import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryTracked, Versioned } from '../../src/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { connectionOptions, describeMysql } from '../mysql/support.js';
import { uniqueTable } from '../postgres/shared.js';
import { suiteNeeding } from '../support/skip.js';

/**
 * A decorated method that leaves a promise chain behind, which calls another decorated method on
 * the same connection some microtasks after the method returned: in the window between the end of
 * the method's unit and its COMMIT, or just after. Whatever the timing, the late call must run in
 * a transaction of its own (never in the finished unit's, which commits without it or with half of
 * it), so that a late call that fails after its write leaves nothing and one that succeeds is
 * committed with its history. Probed at every microtask depth from 0 to 40.
 */

const DATABASE_URL = process.env.DATABASE_URL;
const pgSuite = suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set');

interface Item {
  id: string;
  version?: number;
  timestamp?: Date;
}

interface Connection {
  insert(id: string, version: number): Promise<void>;
  ids(): Promise<string[]>;
  historyIds(): Promise<string[]>;
}

function afterMicrotasks(depth: number, fn: () => void): void {
  let chain = Promise.resolve();
  for (let i = 0; i < depth; i++) chain = chain.then(() => undefined);
  void chain.then(fn);
}

async function probe<S>(
  session: S,
  history: unknown,
  connection: Connection,
): Promise<{ rows: string[]; history: string[]; expected: string[] }> {
  @Versioned()
  @HistoryTracked('history')
  class Items {
    constructor(readonly history: unknown) {}
    lateCalls: Promise<unknown>[] = [];
    behaviour: ((item: Item, session: S) => void) | undefined;

    async save(item: Item, s: S): Promise<void> {
      await connection.insert(item.id, item.version ?? 0);
      if (item.id.startsWith('fail')) throw new Error(`${item.id} fails after its write`);
      this.behaviour?.(item, s);
    }
  }
  const items = new Items(history);
  const expected: string[] = [];
  for (let depth = 0; depth <= 40; depth++) {
    for (const outcome of ['ok', 'fail']) {
      const lateId = `${outcome}-late-${depth}`;
      if (outcome === 'ok') expected.push(lateId);
      items.behaviour = (item, s) => {
        if (!item.id.startsWith('outer')) return;
        items.lateCalls.push(
          new Promise((settle) => {
            afterMicrotasks(depth, () => {
              items.save({ id: lateId }, s).then(settle, settle);
            });
          }),
        );
      };
      const outerId = `outer-${outcome}-${depth}`;
      expected.push(outerId);
      await items.save({ id: outerId }, session);
    }
  }
  const settled = await Promise.all(items.lateCalls);
  for (const [i, result] of settled.entries()) {
    if (i % 2 === 0) expect(result).toBeUndefined();
    else expect(String(result)).toMatch(/fails after its write/);
  }
  return { rows: await connection.ids(), history: await connection.historyIds(), expected: expected.sort() };
}

describe('a late call some microtasks after its parent returned, on one better-sqlite3 connection', () => {
  it('runs in a transaction of its own at every depth: failed ones leave nothing, the others are committed', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, version INTEGER)');
    const store = new SqliteHistoryStore(db, { table: 'item_history' });
    await store.ensureSchema();
    const connection: Connection = {
      insert: async (id, version) => {
        db.prepare('INSERT INTO items VALUES (?, ?)').run(id, version);
      },
      ids: async () => (db.prepare('SELECT id FROM items ORDER BY id').all() as { id: string }[]).map((r) => r.id),
      historyIds: async () =>
        (db.prepare('SELECT entity_id FROM item_history ORDER BY entity_id').all() as { entity_id: string }[]).map(
          (r) => r.entity_id,
        ),
    };
    const { rows, history, expected } = await probe(db, store, connection);
    expect(rows).toEqual(expected);
    expect(history).toEqual(expected);
    db.close();
  });
});

pgSuite('a late call some microtasks after its parent returned, on one pg client', () => {
  const table = uniqueTable('late_items');
  const historyTable = uniqueTable('late_history');
  let client: pg.Client;

  beforeAll(async () => {
    client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`CREATE TABLE ${table} (id text PRIMARY KEY, version integer NOT NULL)`);
  });

  afterAll(async () => {
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    await client.query(`DROP TABLE IF EXISTS ${historyTable}`);
    await client.query(`DROP TABLE IF EXISTS ${historyTable}_heads`);
    await client.end();
  });

  it('runs in a transaction of its own at every depth: failed ones leave nothing, the others are committed', async () => {
    const store = new PostgresHistoryStore(client, { table: historyTable });
    await store.ensureSchema();
    const connection: Connection = {
      insert: async (id, version) => {
        await client.query(`INSERT INTO ${table} (id, version) VALUES ($1, $2)`, [id, version]);
      },
      ids: async () =>
        (await client.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id COLLATE "C"`)).rows.map((r) => r.id),
      historyIds: async () =>
        (
          await client.query<{ entity_id: string }>(
            `SELECT entity_id FROM ${historyTable} ORDER BY entity_id COLLATE "C"`,
          )
        ).rows.map((r) => r.entity_id),
    };
    const { rows, history, expected } = await probe(client, store, connection);
    expect(rows).toEqual(expected);
    expect(history).toEqual(expected);
  });
});

describeMysql('a late call some microtasks after its parent returned, on one mysql2 connection', () => {
  const table = uniqueTable('late_items');
  const historyTable = uniqueTable('late_history');
  let connection: mysql.Connection;

  beforeAll(async () => {
    connection = await mysql.createConnection(connectionOptions());
    await connection.query(`CREATE TABLE ${table} (id varchar(64) PRIMARY KEY, version int NOT NULL)`);
  });

  afterAll(async () => {
    await connection.query(`DROP TABLE IF EXISTS ${table}`);
    await connection.query(`DROP TABLE IF EXISTS ${historyTable}`);
    await connection.query(`DROP TABLE IF EXISTS ${historyTable}_heads`);
    await connection.end();
  });

  it('runs in a transaction of its own at every depth: failed ones leave nothing, the others are committed', async () => {
    const store = new MysqlHistoryStore(connection, { table: historyTable });
    await store.ensureSchema();
    const column = async (sql: string) => ((await connection.query(sql))[0] as { id: string }[]).map((row) => row.id);
    const { rows, history, expected } = await probe(connection, store, {
      insert: async (id, version) => {
        await connection.query(`INSERT INTO ${table} (id, version) VALUES (?, ?)`, [id, version]);
      },
      ids: () => column(`SELECT id FROM ${table} ORDER BY id COLLATE utf8mb4_bin`),
      historyIds: () => column(`SELECT entity_id AS id FROM ${historyTable} ORDER BY entity_id COLLATE utf8mb4_bin`),
    });
    expect(rows).toEqual(expected);
    expect(history).toEqual(expected);
  });
});
