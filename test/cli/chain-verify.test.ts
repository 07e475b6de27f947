import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { chainEntry } from '../../src/history/chain.js';
import {
  type ChainKeys,
  type HistoryEntry,
  HistoryTracked,
  type HistoryTrackedOptions,
  type HistoryWriter,
  Versioned,
} from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { type MongoTarget, openTarget, plainClient } from '../mongodb/target.js';
import { describeMysql, MYSQL_URL } from '../mysql/support.js';
import { tickingClock } from '../support/orders.js';

const BIN = join(import.meta.dirname, '../../src/cli/bin.ts');
const DATABASE_URL = process.env.DATABASE_URL;

const K1 = 'cli-k1-secret-0123456789';
const K2 = 'cli-k2-secret-9876543210';
const ONLY_K1: ChainKeys = { current: 'k1', keys: { k1: K1 } };
const ROTATED: ChainKeys = { current: 'k2', keys: { k1: K1, k2: K2 } };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command line in this process (the exit code `bin` sets is what `main` resolves to). */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env,
  });
  return { code, stdout, stderr };
}

/** The real command, in its own process, for its exit status. */
function spawned(args: string[]): Promise<Run> {
  const { NO_COLOR: _n, FORCE_COLOR: _f, EVENT_HISTORY_CHAIN_KEY: _k, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', BIN, ...args],
      { env: inherited, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function unique(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

class Order {
  version?: number;
  timestamp?: Date;
  constructor(
    readonly id: string,
    public total: number,
  ) {}
}

/** Writes versions up to `upTo` of one order through a decorated service, continuing `order`. */
async function write<S>(
  store: HistoryWriter<S>,
  session: S,
  order: Order,
  upTo: number,
  chain: HistoryTrackedOptions['chain'] = true,
): Promise<Order> {
  @Versioned({ clock: tickingClock() })
  @HistoryTracked(store, { chain, entityType: 'Order' })
  class OrderService {
    async save(_order: Order, _session: S): Promise<void> {}
    async update(_order: Order, _session: S): Promise<void> {}
  }
  const orders = new OrderService();
  while ((order.version ?? 0) < upTo) {
    if (order.version === undefined) await orders.save(order, session);
    else {
      order.total += 1;
      await orders.update(order, session);
    }
  }
  return order;
}

function keyFile(content: string): string {
  const path = join(tmpdir(), `${unique('chain-key')}.json`);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

describe('event-history verify on SQLite: what the chain proves, by exit code', () => {
  const path = join(tmpdir(), `${unique('event-history-chain')}.db`);
  const url = `sqlite:${path}`;
  const files: string[] = [];
  let db: Database.Database;
  const sql = (text: string, ...values: unknown[]) => db.prepare(text).run(...values);

  beforeAll(async () => {
    db = new Database(path);
    const store = new SqliteHistoryStore(db);
    await store.ensureSchema();
    for (const id of ['intact', 'stripped', 'bare', 'truncated']) await write(store, db, new Order(id, 10), 3);
    await write(store, db, new Order('keyed', 10), 3, { key: ONLY_K1 });
    await write(store, db, new Order('recomputed', 10), 3, { key: ONLY_K1 });
    await write(store, db, await write(store, db, new Order('rotated', 10), 2, { key: ONLY_K1 }), 4, { key: ROTATED });

    sql(`UPDATE entity_history SET hash = NULL, prev_hash = NULL WHERE entity_id IN ('stripped', 'bare')`);
    sql(
      `UPDATE entity_history SET snapshot = json_set(snapshot, '$.total', 999) WHERE entity_id = 'stripped' AND version = 2`,
    );
    sql(`DELETE FROM entity_history_heads WHERE entity_id = 'bare'`);
    sql(`DELETE FROM entity_history WHERE entity_id = 'truncated' AND version = 3`);
    // Without the key: edit version 2, recompute every hash and the head, as anyone who can write both tables can.
    const forged: HistoryEntry[] = [];
    for (const entry of await store.list('Order', 'recomputed')) {
      const edited =
        entry.version === 2 ? { ...entry, snapshot: { ...(entry.snapshot as object), total: 1e6 } } : entry;
      forged.push(chainEntry(edited, forged.at(-1)));
    }
    sql(`DELETE FROM entity_history WHERE entity_id = 'recomputed'`);
    for (const entry of forged) await store.save(entry);
  });

  afterAll(() => {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    for (const file of files) rmSync(file, { force: true });
  });

  it('0 for an intact, anchored chain (saying it is unkeyed); 1 for stripped, truncated, and --require-chain on a bare history', async () => {
    const verify = (id: string, ...extra: string[]) => cli(['verify', 'Order', id, '--url', url, ...extra]);
    const [intact, stripped, bare, bareRequired, truncated, json] = await Promise.all([
      verify('intact'),
      verify('stripped'),
      verify('bare'),
      verify('bare', '--require-chain'),
      verify('truncated'),
      verify('stripped', '--json'),
    ]);

    expect(intact.code).toBe(0);
    expect(intact.stdout).toMatch(/^ok Order intact: 3 entries, hash chain intact\n {2}anchored: /);
    expect(intact.stdout).toContain('  unkeyed: someone who can write the history and heads tables could recompute');
    expect(stripped).toMatchObject({ code: 1, stderr: '' });
    expect(stripped.stdout).toMatch(/^TAMPERED Order stripped: version 3 was stripped: /);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, kind: 'stripped', chained: true, anchored: false });
    // Hashes and head both gone: indistinguishable from a history never chained, unless the chain is required.
    expect(bare.code).toBe(0);
    expect(bare.stdout).toMatch(/^not chained Order bare: 3 entries, none with a hash, and no head: nothing proves/);
    expect(bare.stdout).not.toContain('nothing to verify');
    expect(bareRequired.code).toBe(1);
    expect(bareRequired.stdout).toMatch(/^NOT VERIFIED Order bare: unchained: /);
    expect(truncated.code).toBe(1);
    expect(truncated.stdout).toMatch(/^TAMPERED Order truncated: version 3 was removed: the head anchors version 3/);
  });

  it('the process exits with the status verify reports: 0 intact, 1 stripped', async () => {
    const [intact, stripped] = await Promise.all([
      spawned(['verify', 'Order', 'intact', '--url', url]),
      spawned(['verify', 'Order', 'stripped', '--url', url]),
    ]);

    expect(intact).toMatchObject({ code: 0, stderr: '' });
    expect(stripped.code).toBe(1);
    expect(stripped.stdout).toMatch(/^TAMPERED Order stripped: version 3 was stripped/);
  });

  it('with --key-file or EVENT_HISTORY_CHAIN_KEY: 0 for a keyed chain, 1 for one recomputed without the key or without the key given', async () => {
    const k1 = keyFile(JSON.stringify(ONLY_K1));
    const single = keyFile(`${K1}\n`);
    files.push(k1, single);
    const verify = (id: string, ...extra: string[]) => cli(['verify', 'Order', id, '--url', url, ...extra]);
    const [keyed, byEnv, bySecret, noKey, recomputed, recomputedNoKey] = await Promise.all([
      verify('keyed', '--key-file', k1),
      cli(['verify', 'Order', 'keyed', '--url', url], { EVENT_HISTORY_CHAIN_KEY: JSON.stringify(ONLY_K1) }),
      verify('keyed', '--key-file', single, '--key-id', 'k1'),
      verify('keyed'),
      verify('recomputed', '--key-file', k1),
      verify('recomputed'),
    ]);

    for (const run of [keyed, byEnv, bySecret]) {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^ok Order keyed: 3 entries, hash chain intact\n/);
      expect(run.stdout).toContain('  keyed: the newest entry and the head carry MACs that verified');
      expect(run.stdout + run.stderr).not.toContain(K1);
    }
    expect(noKey.code).toBe(1);
    expect(noKey.stdout).toMatch(/^NOT VERIFIED Order keyed: unknown-key at version 1: .*no key was given/);
    expect(recomputed.code).toBe(1);
    expect(recomputed.stdout).toMatch(/^NOT VERIFIED Order recomputed: unkeyed at version 3: /);
    // What the key is for: without it, the recomputed chain looks intact.
    expect(recomputedNoKey.code).toBe(0);
  });

  it('key rotation: 0 with a keyring holding k1 and k2, 1 naming k1 with k2 alone', async () => {
    const both = keyFile(JSON.stringify(ROTATED));
    const onlyK2 = keyFile(JSON.stringify({ current: 'k2', keys: { k2: K2 } }));
    files.push(both, onlyK2);
    const [rotated, missing] = await Promise.all([
      cli(['verify', 'Order', 'rotated', '--url', url, '--key-file', both]),
      cli(['verify', 'Order', 'rotated', '--url', url, '--key-file', onlyK2, '--json']),
    ]);

    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/^ok Order rotated: 4 entries/);
    expect(missing.code).toBe(1);
    const result = JSON.parse(missing.stdout) as { kind: string; version: number; detail: string };
    expect(result).toMatchObject({ kind: 'unknown-key', version: 1 });
    expect(result.detail).toContain('"k1"');
    expect(missing.stdout).not.toContain(K2);
  });

  it('2 for an unreadable key file, a key too short, a keyring that is not JSON, and --key-id without a key; the key never printed', async () => {
    const short = keyFile('short-secret');
    const broken = keyFile('{"current": "k1", "keys": {');
    files.push(short, broken);
    const verify = (...extra: string[]) => cli(['verify', 'Order', 'keyed', '--url', url, ...extra]);
    const runs = await Promise.all([
      verify('--key-file', join(tmpdir(), unique('no-such-key'))),
      verify('--key-file', short),
      verify('--key-file', broken),
      verify('--key-id', 'k1'),
    ]);

    expect(runs.map((run) => run.code)).toEqual([2, 2, 2, 2]);
    const [missing, tooShort, notJson, keyIdAlone] = runs.map((run) => run.stderr);
    expect(missing).toMatch(/^event-history: cannot read the key file .*: ENOENT/);
    expect(tooShort).toContain('must be a string or bytes of at least 16 bytes');
    expect(tooShort).not.toContain('short-secret');
    expect(notJson).toContain('is not valid JSON');
    expect(keyIdAlone).toContain('--key-id names the key');
  });
});

if (DATABASE_URL === undefined && !REQUIRE_DATABASES) {
  describe.skip('event-history verify on PostgreSQL: skipped because DATABASE_URL is not set (REQUIRE_DATABASES=1 makes this fail)', () => {
    it('verifies a PostgreSQL chain', () => {});
  });
} else {
  describe('event-history verify on PostgreSQL', () => {
    const table = unique('cli_chain');
    let pool: pg.Pool;

    beforeAll(async () => {
      if (DATABASE_URL === undefined) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
      const store = new PostgresHistoryStore(pool, { table });
      await store.ensureSchema();
      const client = await pool.connect();
      try {
        for (const id of ['intact', 'stripped', 'truncated']) await write(store, client, new Order(id, 10), 3);
      } finally {
        client.release();
      }
      await pool.query(`UPDATE "${table}" SET hash = NULL, prev_hash = NULL WHERE entity_id = $1`, ['stripped']);
      await pool.query(`DELETE FROM "${table}" WHERE entity_id = $1 AND version = 3`, ['truncated']);
    });

    afterAll(async () => {
      await pool?.query(`DROP TABLE IF EXISTS "${table}", "${table}_heads"`);
      await pool?.end();
    });

    it('0 intact, 1 stripped, 1 truncated', async () => {
      const verify = (id: string) => cli(['verify', 'Order', id, '--url', DATABASE_URL as string, '--table', table]);
      const [intact, stripped, truncated] = await Promise.all([
        verify('intact'),
        verify('stripped'),
        verify('truncated'),
      ]);

      expect(intact.code).toBe(0);
      expect(stripped.code).toBe(1);
      expect(stripped.stdout).toMatch(/version 3 was stripped/);
      expect(truncated.code).toBe(1);
      expect(truncated.stdout).toMatch(/version 3 was removed/);
    });
  });
}

describeMysql('event-history verify on MySQL/MariaDB', () => {
  const table = unique('cli_chain');
  let pool: mysql.Pool;

  beforeAll(async () => {
    pool = mysql.createPool(MYSQL_URL as string);
    const store = new MysqlHistoryStore(pool, { table });
    await store.ensureSchema();
    const connection = await pool.getConnection();
    try {
      for (const id of ['intact', 'stripped', 'truncated']) await write(store, connection, new Order(id, 10), 3);
      await write(store, connection, new Order('keyed', 10), 2, { key: ONLY_K1 });
    } finally {
      connection.release();
    }
    await pool.query(`UPDATE \`${table}\` SET hash = NULL, prev_hash = NULL WHERE entity_id = ?`, ['stripped']);
    await pool.query(`DELETE FROM \`${table}\` WHERE entity_id = ? AND version = 3`, ['truncated']);
  });

  afterAll(async () => {
    await pool?.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_heads\``);
    await pool?.end();
  });

  it('0 intact (and keyed with the key), 1 stripped, 1 truncated', async () => {
    const k1 = keyFile(JSON.stringify(ONLY_K1));
    const verify = (id: string, ...extra: string[]) =>
      cli(['verify', 'Order', id, '--url', MYSQL_URL as string, '--table', table, ...extra]);
    const [intact, keyed, stripped, truncated] = await Promise.all([
      verify('intact'),
      verify('keyed', '--key-file', k1),
      verify('stripped'),
      verify('truncated'),
    ]);
    rmSync(k1, { force: true });

    expect(intact.code).toBe(0);
    expect(keyed.code).toBe(0);
    expect(keyed.stdout).toContain('  keyed: ');
    expect(stripped.code).toBe(1);
    expect(stripped.stdout).toMatch(/version 3 was stripped/);
    expect(truncated.code).toBe(1);
    expect(truncated.stdout).toMatch(/version 3 was removed/);
  });
});

describe('event-history verify on MongoDB', () => {
  let target: MongoTarget;
  let client: MongoClient;
  const collection = unique('cli_chain');

  beforeAll(async () => {
    target = await openTarget();
    client = plainClient(target.url);
    await client.connect();
    const store = new MongoHistoryStore(client.db(), { collection });
    await store.ensureSchema();
    const session = client.startSession();
    try {
      for (const id of ['intact', 'stripped', 'truncated']) await write(store, session, new Order(id, 10), 3);
    } finally {
      await session.endSession();
    }
    const rows = client.db().collection(collection);
    await rows.updateMany({ entityId: 'stripped' }, { $unset: { hash: '', prevHash: '' } });
    await rows.deleteMany({ entityId: 'truncated', version: 3 });
  });

  afterAll(async () => {
    for (const name of [collection, `${collection}_heads`]) {
      await client
        ?.db()
        .collection(name)
        .drop()
        .catch(() => undefined);
    }
    await client?.close();
    await target?.close();
  });

  it('0 intact, 1 stripped, 1 truncated', async () => {
    const verify = (id: string) => cli(['verify', 'Order', id, '--url', target.url, '--table', collection]);
    const [intact, stripped, truncated] = await Promise.all([
      verify('intact'),
      verify('stripped'),
      verify('truncated'),
    ]);

    expect(intact.code).toBe(0);
    expect(stripped.code).toBe(1);
    expect(stripped.stdout).toMatch(/version 3 was stripped/);
    expect(truncated.code).toBe(1);
    expect(truncated.stdout).toMatch(/version 3 was removed/);
  });
});
