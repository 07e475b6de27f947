import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryTracked, type HistoryWriter, Versioned, withHistoryContext } from '../../src/index.js';
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

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command line as a user does, in its own process (through tsx, on the sources). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { NO_COLOR: _n, FORCE_COLOR: _f, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', BIN, ...args],
      { env: { ...inherited, ...env }, timeout: 20_000 },
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
    public lines: { id: number; qty: number }[] = [],
  ) {}
}

/** Writes three chained versions of one order through a decorated service: create, a price change by ada, a new line. */
async function writeHistory<S>(store: HistoryWriter<S>, session: S, id: string): Promise<void> {
  @Versioned({ clock: tickingClock() })
  @HistoryTracked(store, { chain: true })
  class OrderService {
    async save(_order: Order, _session: S): Promise<void> {}
    async update(_order: Order, _session: S): Promise<void> {}
  }
  const orders = new OrderService();
  const order = new Order(id, 10, [{ id: 1, qty: 1 }]);
  await orders.save(order, session);
  order.total = 12;
  await withHistoryContext({ actor: 'ada', reason: 'price change' }, () => orders.update(order, session));
  order.lines.push({ id: 2, qty: 3 });
  await orders.update(order, session);
}

describe('event-history CLI on SQLite', () => {
  const path = join(tmpdir(), `${unique('event-history-cli')}.db`);
  const url = `sqlite:${path}`;
  let db: Database.Database;

  beforeAll(async () => {
    db = new Database(path);
    const store = new SqliteHistoryStore(db);
    await store.ensureSchema();
    await writeHistory(store, db, 'o1');
  });

  afterAll(() => {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  });

  it('log prints every version newest first with actor, reason and its field changes, like git log -p', async () => {
    const { code, stdout, stderr } = await cli(['log', 'Order', 'o1', '--url', url]);

    expect(stderr).toBe('');
    expect(code).toBe(0);
    const headers = stdout.split('\n').filter((line) => line.startsWith('version '));
    expect(headers.map((line) => line.split(' ').slice(0, 3).join(' '))).toEqual([
      'version 3 update',
      'version 2 update',
      'version 1 create',
    ]);
    expect(stdout).toContain('Actor:    ada\nReason:   price change\n');
    expect(stdout).toContain('    + lines[id=2]: {"id":2,"qty":3}\n');
    expect(stdout).toContain('    ~ total: 10 → 12\n');
    expect(stdout).toContain('    + total: 10\n');
    expect(stdout).toMatch(/Hash: {5}[0-9a-f]{64}/);
    expect(stdout).not.toContain('\u001b[');
  });

  it('log --json prints the entries with their changes, and --limit keeps the newest', async () => {
    const { code, stdout } = await cli(['log', 'Order', 'o1', '--url', url, '--json', '--limit', '2']);

    expect(code).toBe(0);
    const entries = JSON.parse(stdout) as { version: number; reason?: string; changes: { path: string }[] }[];
    expect(entries.map((entry) => entry.version)).toEqual([3, 2]);
    expect(entries[1]?.reason).toBe('price change');
    expect(entries[1]?.changes.map((change) => change.path)).toEqual(['total']);
  });

  it('show prints one version with its changes and full snapshot, and a missing version exits 1', async () => {
    const [shown, missing] = await Promise.all([
      cli(['show', 'Order', 'o1', '2', '--url', url]),
      cli(['show', 'Order', 'o1', '9', '--url', url]),
    ]);

    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^version 2 update /);
    expect(shown.stdout).toContain('    ~ total: 10 → 12\n');
    expect(shown.stdout).toContain('Snapshot:\n    {\n      "id": "o1",\n      "total": 12,');
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toBe('event-history: Order o1 has no version 9 (its latest is 3).\n');
  });

  it('verify exits 0 for an intact chain, and 1 naming the version after a direct UPDATE of a stored row', async () => {
    const intact = await cli(['verify', 'Order', 'o1', '--url', url]);
    db.exec(
      `UPDATE entity_history SET snapshot = json_set(snapshot, '$.total', 1) WHERE entity_id = 'o1' AND version = 2`,
    );
    const [tampered, json] = await Promise.all([
      cli(['verify', 'Order', 'o1', '--url', url]),
      cli(['verify', 'Order', 'o1', '--url', url, '--json']),
    ]);
    db.exec(
      `UPDATE entity_history SET snapshot = json_set(snapshot, '$.total', 12) WHERE entity_id = 'o1' AND version = 2`,
    );

    expect(intact).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^ok Order o1: 3 entries, hash chain intact\n {2}anchored: /),
    });
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(/^TAMPERED Order o1: version 2 was altered: /);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, version: 2, kind: 'altered' });
  });

  it('colours only when asked: FORCE_COLOR adds ANSI styles, NO_COLOR wins over it', async () => {
    const [forced, both] = await Promise.all([
      cli(['log', 'Order', 'o1', '--url', url], { FORCE_COLOR: '1' }),
      cli(['log', 'Order', 'o1', '--url', url], { FORCE_COLOR: '1', NO_COLOR: '1' }),
    ]);

    expect(forced.stdout).toContain('\u001b[33mversion 3\u001b[39m');
    expect(forced.stdout).toContain('\u001b[32m    + lines[id=2]: {"id":2,"qty":3}\u001b[39m');
    expect(both.stdout).not.toContain('\u001b[');
  });

  it('reports usage errors, a bad URL, a missing table, a missing file and an unreachable server with distinct exit codes', async () => {
    const runs = await Promise.all([
      cli([]),
      cli(['log', 'Order']),
      cli(['log', 'Order', 'o1', '--url', 'redis://localhost']),
      cli(['log', 'Order', 'o1', '--url', url, '--table', 'no_such_table']),
      cli(['log', 'Order', 'o1', '--url', url, '--table', 'bad;name']),
      cli(['log', 'Order', 'o1', '--url', `sqlite:${path}.missing`]),
      cli(['log', 'Order', 'o1', '--url', 'postgres://u:secret@127.0.0.1:1/db']),
      cli(['log', 'Order', 'nobody', '--url', url]),
    ]);

    expect(runs.map((run) => run.code)).toEqual([2, 2, 2, 4, 2, 3, 3, 1]);
    for (const run of runs) expect(run.stderr).toMatch(/^event-history: .+/);
    const [none, short, scheme, table, name, file, server, nobody] = runs.map((run) => run.stderr);
    expect(none).toContain('no command given');
    expect(short).toContain('log needs <entityType> <id>');
    expect(scheme).toContain('must start with postgres://');
    expect(table).toContain('"no_such_table" does not exist');
    expect(name).toContain('not a safe identifier');
    expect(file).toContain('cannot open the SQLite database');
    expect(server).toContain('cannot connect to postgres://u:***@127.0.0.1:1/db');
    expect(server).not.toContain('secret');
    expect(nobody).toContain('Order nobody has no history');
  });
});

if (DATABASE_URL === undefined && !REQUIRE_DATABASES) {
  describe.skip('event-history CLI on PostgreSQL: skipped because DATABASE_URL is not set (REQUIRE_DATABASES=1 makes this fail)', () => {
    it('reads a PostgreSQL history table', () => {});
  });
} else {
  describe('event-history CLI on PostgreSQL', () => {
    const table = unique('cli_history');
    let pool: pg.Pool;

    beforeAll(async () => {
      if (DATABASE_URL === undefined) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
      const store = new PostgresHistoryStore(pool, { table });
      await store.ensureSchema();
      const client = await pool.connect();
      try {
        await writeHistory(store, client, 'o1');
      } finally {
        client.release();
      }
    });

    afterAll(async () => {
      await pool?.query(`DROP TABLE IF EXISTS ${table}, ${table}_heads`);
      await pool?.end();
    });

    it('log, show and verify read the table named with --table, and verify finds a row deleted with SQL', async () => {
      const url = DATABASE_URL as string;
      const [log, show, verified] = await Promise.all([
        cli(['log', 'Order', 'o1', '--url', url, '--table', table]),
        cli(['show', 'Order', 'o1', '1', '--url', url, '--table', table, '--json']),
        cli(['verify', 'Order', 'o1', '--url', url, '--table', table]),
      ]);
      await pool.query(`DELETE FROM ${table} WHERE entity_id = 'o1' AND version = 2`);
      const [tampered, missing] = await Promise.all([
        cli(['verify', 'Order', 'o1', '--url', url, '--table', table]),
        cli(['log', 'Order', 'o1', '--url', url, '--table', `${table}_missing`]),
      ]);

      expect(log.code).toBe(0);
      expect(log.stdout).toContain('    ~ total: 10 → 12\n');
      expect(log.stdout.indexOf('version 3')).toBeLessThan(log.stdout.indexOf('version 1'));
      expect(JSON.parse(show.stdout)).toMatchObject({ version: 1, op: 'create', snapshot: { id: 'o1', total: 10 } });
      expect(verified).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^ok Order o1: 3 entries, hash chain intact\n {2}anchored: /),
      });
      expect(tampered.code).toBe(1);
      expect(tampered.stdout).toMatch(/version 2 was removed/);
      expect(missing.code).toBe(4);
    });
  });
}

describeMysql('event-history CLI on MySQL/MariaDB', () => {
  const table = unique('cli_history');
  let pool: mysql.Pool;

  beforeAll(async () => {
    pool = mysql.createPool(MYSQL_URL as string);
    const store = new MysqlHistoryStore(pool, { table });
    await store.ensureSchema();
    const connection = await pool.getConnection();
    try {
      await writeHistory(store, connection, 'o1');
    } finally {
      connection.release();
    }
  });

  afterAll(async () => {
    await pool?.query(`DROP TABLE IF EXISTS ${table}, ${table}_heads`);
    await pool?.end();
  });

  it('log and verify read a mysql:// table, and mariadb:// names the same server', async () => {
    const url = MYSQL_URL as string;
    const [log, verified] = await Promise.all([
      cli(['log', 'Order', 'o1', '--url', url, '--table', table]),
      cli(['verify', 'Order', 'o1', '--url', url.replace(/^mysql:/, 'mariadb:'), '--table', table]),
    ]);

    expect(log.code).toBe(0);
    expect(log.stdout).toContain('Actor:    ada\nReason:   price change\n');
    expect(log.stdout).toContain('    ~ total: 10 → 12\n');
    expect(verified).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^ok Order o1: 3 entries, hash chain intact\n {2}anchored: /),
    });
  });
});

describe('event-history CLI on MongoDB', () => {
  let target: MongoTarget;
  let client: MongoClient;
  const collection = unique('cli_history');

  beforeAll(async () => {
    target = await openTarget();
    client = plainClient(target.url);
    await client.connect();
    const store = new MongoHistoryStore(client.db(), { collection });
    await store.ensureSchema();
    const session = client.startSession();
    try {
      await writeHistory(store, session, 'o1');
    } finally {
      await session.endSession();
    }
  });

  afterAll(async () => {
    await client
      ?.db()
      .collection(collection)
      .drop()
      .catch(() => undefined);
    await client?.close();
    await target?.close();
  });

  it('log and verify read a mongodb:// collection, and a missing collection exits 4', async () => {
    const [log, verified, missing] = await Promise.all([
      cli(['log', 'Order', 'o1', '--url', target.url, '--table', collection]),
      cli(['verify', 'Order', 'o1', '--url', target.url, '--table', collection]),
      cli(['log', 'Order', 'o1', '--url', target.url, '--table', `${collection}_missing`]),
    ]);

    expect(log.stderr).toBe('');
    expect(log.stdout).toContain('    + lines[id=2]: {"id":2,"qty":3}\n');
    expect(verified).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^ok Order o1: 3 entries, hash chain intact\n {2}anchored: /),
    });
    expect(missing.code).toBe(4);
  });
});

describe('event-history CLI never prints credentials, and a bad URL is a usage error', () => {
  async function run(url: string): Promise<{ code: number; stderr: string }> {
    const { main } = await import('../../src/cli/main.js');
    let stderr = '';
    const io = {
      stdout: { write: () => true },
      stderr: { write: (text: string) => (stderr += text) },
      env: {},
    };
    const code = await main(['log', 'Order', 'o1', '--url', url], io);
    return { code, stderr };
  }

  it('masks the userinfo password and password/pass/pwd query parameters of unreachable servers (exit 3)', async () => {
    for (const url of [
      'postgres://u:hunter2pw@127.0.0.1:1/db',
      'postgres://u@127.0.0.1:1/db?password=hunter2pw',
      'postgres://u@127.0.0.1:1/db?sslmode=disable&PASS=hunter2pw',
      'mysql://u@127.0.0.1:1/db?pwd=hunter2pw',
      'mysql://u:hunter%32pw@127.0.0.1:1/db',
    ]) {
      const { code, stderr } = await run(url);
      expect(code, url).toBe(3);
      expect(stderr, url).not.toMatch(/hunter/);
      expect(stderr, url).toContain('***');
    }
  }, 60_000);

  it('a URL that cannot be parsed exits 2 and its raw text is masked too', async () => {
    for (const url of [
      'postgres://u:hunter2pw@[bad/db',
      'postgres://u:hunter2pw@host:99999/db',
      'mysql://u:hunter2pw@host:notaport/db?password=hunter3pw',
      'mongodb://u:hunter2pw@[::1/db',
      'mongodb://u:hunter2pw@host/db?pwd=hunter3pw&unknownOption=1&authMechanism=NOPE',
      'postgres://',
      'mysql:///db?pass=hunter2pw',
    ]) {
      const { code, stderr } = await run(url);
      expect(code, url).toBe(2);
      expect(stderr, url).not.toMatch(/hunter/);
      expect(stderr, url).toMatch(/^event-history: /);
    }
  });

  it('the binary prints no password either, for a bad URL (exit 2)', async () => {
    const run = await cli(['log', 'Order', 'o1', '--url', 'postgres://u:hunter2pw@[::1/db?password=hunter3pw']);
    expect(run.code).toBe(2);
    expect(run.stderr).not.toMatch(/hunter/);
  }, 30_000);
});
