// A driver pool passed as the session: the call takes a connection, runs in a transaction on it,
// and gives it back, also when it fails. Against real servers (DATABASE_URL, MYSQL_URL).
import * as mariadb from 'mariadb';
import * as mysql2 from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentSession, HistoryTracked, type HistoryWriter, Versioned } from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { mysql2Adapter } from '../../src/transactions/mysql2.js';
import { pgAdapter } from '../../src/transactions/pg.js';
import { mariadbPoolAdapter, mysql2PoolAdapter, pgPoolAdapter } from '../../src/transactions/pool.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { connectionOptions, uniqueTable } from '../mysql/support.js';

interface Order {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

/** What the suite needs of one driver's pool. */
interface PoolKit {
  readonly name: string;
  readonly missing: string | undefined;
  open(): unknown;
  close(pool: unknown): Promise<void>;
  /** How many connections the pool holds, and how many of them are idle. */
  counts(pool: unknown): { total: number; idle: number };
  store(pool: unknown, table: string): HistoryWriter & { ensureSchema(): Promise<void> };
  exec(target: unknown, sql: string, values?: unknown[]): Promise<unknown[]>;
  /** The server's id of the connection a session is (pg backend pid, MySQL thread id). */
  connectionId(session: unknown): number;
  placeholder(n: number): string;
}

const pgKit: PoolKit = {
  name: 'pg.Pool',
  missing: process.env.DATABASE_URL ? undefined : 'DATABASE_URL is not set',
  open: () => new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 }),
  close: (pool) => (pool as pg.Pool).end(),
  counts: (pool) => ({ total: (pool as pg.Pool).totalCount, idle: (pool as pg.Pool).idleCount }),
  store: (pool, table) => new PostgresHistoryStore(pool as pg.Pool, { table }),
  exec: async (target, sql, values = []) => (await (target as pg.Pool).query(sql, values)).rows,
  connectionId: (session) => (session as { processID: number }).processID,
  placeholder: (n) => `$${n}`,
};

/** The counts of a mysql2 pool live on its callback pool (no public counters). */
interface Mysql2CorePool {
  readonly _allConnections: { length: number };
  readonly _freeConnections: { length: number };
}

const mysql2Kit: PoolKit = {
  name: 'mysql2/promise pool',
  missing: process.env.MYSQL_URL ? undefined : 'MYSQL_URL is not set',
  open: () => mysql2.createPool({ ...connectionOptions(), connectionLimit: 4 }),
  close: (pool) => (pool as mysql2.Pool).end(),
  counts: (pool) => {
    const core = (pool as unknown as { pool: Mysql2CorePool }).pool;
    return { total: core._allConnections.length, idle: core._freeConnections.length };
  },
  store: (pool, table) => new MysqlHistoryStore(pool as MysqlQueryable, { table }),
  exec: async (target, sql, values = []) => {
    const [rows] = await (target as mysql2.Pool).query(sql, values);
    return Array.isArray(rows) ? rows : [rows];
  },
  connectionId: (session) => (session as mysql2.PoolConnection).threadId,
  placeholder: () => '?',
};

const mariadbKit: PoolKit = {
  name: 'mariadb pool',
  missing: process.env.MYSQL_URL ? undefined : 'MYSQL_URL is not set',
  open: () => mariadb.createPool({ ...connectionOptions(), connectionLimit: 4 }),
  close: (pool) => (pool as mariadb.Pool).end(),
  counts: (pool) => ({
    total: (pool as mariadb.Pool).totalConnections(),
    idle: (pool as mariadb.Pool).idleConnections(),
  }),
  store: (pool, table) => new MysqlHistoryStore(pool as MysqlQueryable, { table }),
  exec: async (target, sql, values = []) => {
    const result = await (target as mariadb.Pool).query(sql, values);
    return Array.isArray(result) ? [...result] : [result];
  },
  connectionId: (session) => Number((session as mariadb.PoolConnection).threadId),
  placeholder: () => '?',
};

describe('pool adapters', () => {
  it('take pools only, never a connection, and connection adapters never take a pool', async () => {
    const pgPool = new pg.Pool({ connectionString: 'postgres://127.0.0.1:1/none' });
    const mysqlPool = mysql2.createPool({ host: '127.0.0.1', port: 1 });
    try {
      expect(findAdapter(pgPool)?.name).toBe('pg-pool');
      expect(findAdapter(mysqlPool)?.name).toBe('mysql2-pool');
      expect(pgPoolAdapter.matches(new pg.Client())).toBe(false);
      expect(mysql2PoolAdapter.matches(mysqlPool.pool)).toBe(false); // the callback pool: no promise API
      expect(pgAdapter.matches(pgPool)).toBe(false);
      expect(mysql2Adapter.matches(mysqlPool)).toBe(false);
      expect(mariadbPoolAdapter.matches(mysqlPool)).toBe(false);
    } finally {
      await pgPool.end();
      await mysqlPool.end();
    }
  });
});

for (const kit of [pgKit, mysql2Kit, mariadbKit]) {
  if (kit.missing !== undefined && !REQUIRE_DATABASES) {
    describe.skip(`${kit.name} as the session: skipped because ${kit.missing} (REQUIRE_DATABASES=1 makes this fail)`, () => {
      it('needs the server', () => {});
    });
    continue;
  }
  describe(`${kit.name} as the session`, () => {
    const orders = uniqueTable('eh_pool_orders');
    const history = uniqueTable('eh_pool_history');
    let pool: unknown;
    let service: OrderService;
    const seen: { pool: unknown; argument: unknown; current: unknown; id: number }[] = [];
    let during: (() => Promise<void>) | undefined;
    const p = kit.placeholder;

    @Versioned()
    @HistoryTracked('history')
    class OrderService {
      constructor(readonly history: HistoryWriter) {}
      async save(order: Order, session: unknown): Promise<void> {
        seen.push({ pool, argument: session, current: currentSession(), id: kit.connectionId(session) });
        await kit.exec(session, `INSERT INTO ${orders} (id, total, version) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [
          order.id,
          order.total,
          order.version,
        ]);
        await during?.();
      }
    }

    beforeAll(async () => {
      if (kit.missing !== undefined)
        throw new Error(`REQUIRE_DATABASES=1, but ${kit.name} cannot run: ${kit.missing}.`);
      pool = kit.open();
      await kit.exec(
        pool,
        `CREATE TABLE ${orders} (id varchar(64) PRIMARY KEY, total integer NOT NULL, version integer NOT NULL)`,
      );
      const store = kit.store(pool, history);
      await store.ensureSchema();
      service = new OrderService(store);
    });

    afterAll(async () => {
      if (pool === undefined) return;
      await kit.exec(pool, `DROP TABLE IF EXISTS ${orders}`);
      await kit.exec(pool, `DROP TABLE IF EXISTS ${history}`);
      await kit.exec(pool, `DROP TABLE IF EXISTS ${history}_heads`);
      await kit.close(pool);
    });

    const rows = async (id: string) =>
      (await kit.exec(pool, `SELECT id FROM ${orders} WHERE id = ${p(1)}`, [id])).length;
    const entries = async (id: string) =>
      (await kit.exec(pool, `SELECT version FROM ${history} WHERE entity_id = ${p(1)}`, [id])).length;

    it('runs the call on a connection of its own, in place of the pool, and gives the connection back', async () => {
      seen.length = 0;
      const order: Order = { id: 'ok', total: 10 };
      await service.save(order, pool);
      expect(order.version).toBe(1);
      expect(await rows('ok')).toBe(1);
      expect(await entries('ok')).toBe(1);
      const [call] = seen;
      expect(call?.argument).not.toBe(pool);
      expect(call?.current).toBe(call?.argument);
      const { total, idle } = kit.counts(pool);
      expect(total).toBeGreaterThan(0);
      expect(idle).toBe(total);
    });

    it('rolls back a failing call and gives its connection back', async () => {
      during = () => Promise.reject(new Error('fails after its insert'));
      const order: Order = { id: 'fails', total: 5 };
      try {
        await expect(service.save(order, pool)).rejects.toThrow('fails after its insert');
      } finally {
        during = undefined;
      }
      expect(order.version).toBeUndefined();
      expect(await rows('fails')).toBe(0);
      expect(await entries('fails')).toBe(0);
      const { total, idle } = kit.counts(pool);
      expect(idle).toBe(total);
      // The pool still serves calls: nothing was left checked out or inside a transaction.
      for (let i = 0; i < 6; i++) await service.save({ id: `after-${i}`, total: i }, pool);
      expect(kit.counts(pool).idle).toBe(kit.counts(pool).total);
    });

    it('gives concurrent calls on one pool a connection each, side by side', async () => {
      seen.length = 0;
      let inside = 0;
      let most = 0;
      let release!: () => void;
      const allInside = new Promise<void>((resolve) => {
        release = resolve;
      });
      // Each call waits until all three are inside their transactions: one connection for all
      // three would run them one after the other, and never get there.
      const bounded = Promise.race([allInside, new Promise<void>((resolve) => setTimeout(resolve, 5000))]);
      during = async () => {
        inside += 1;
        most = Math.max(most, inside);
        if (inside === 3) release();
        await bounded;
        inside -= 1;
      };
      try {
        await Promise.all([0, 1, 2].map((i) => service.save({ id: `together-${i}`, total: i }, pool)));
      } finally {
        during = undefined;
      }
      expect(most).toBe(3);
      expect(new Set(seen.map((call) => call.id)).size).toBe(3);
      for (let i = 0; i < 3; i++) expect(await entries(`together-${i}`)).toBe(1);
      expect(kit.counts(pool).idle).toBe(kit.counts(pool).total);
    });
  });
}
