import type * as mariadb from 'mariadb';
import * as mariadbCallback from 'mariadb/callback';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HistoryTracked, TransactionStateError, Versioned } from '../../src/index.js';
import { MysqlHistoryStore, mariadbAdapter, mysql2Adapter } from '../../src/mysql/index.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { orderId, runBehaviourSuite } from '../integration/behaviour.js';
import { MariadbFixture, mariadbKit } from './mariadb-fixture.js';
import { runMysqlSuite } from './mysql-suite.js';
import { runMysqlSafetySuite } from './safety-suite.js';
import { connectionOptions, describeMysql, uniqueTable } from './support.js';

runBehaviourSuite(new MariadbFixture());
runMysqlSuite(mariadbKit);
runMysqlSafetySuite(mariadbKit);

describeMysql('MySQL (mariadb): driver specifics', () => {
  const table = uniqueTable('eh_mariadb');
  let pool: mariadb.Pool;

  beforeAll(() => {
    pool = mariadbKit.createPool();
  });

  afterAll(async () => {
    if (pool === undefined) return;
    try {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
    } finally {
      await pool.end();
    }
  });

  it('a callback-API connection is not taken for a session', async () => {
    const connection = await new Promise<mariadbCallback.Connection>((resolve, reject) => {
      const created = mariadbCallback.createConnection(connectionOptions());
      created.once('connect', (error?: Error) => (error ? reject(error) : resolve(created)));
    });
    try {
      expect(findAdapter(connection)).toBeUndefined();
      expect(mysql2Adapter.matches(connection)).toBe(false);
      // Its query(sql, values, callback) returns no promise: a store over it would never see a failure.
      expect(() => new MysqlHistoryStore(connection as never)).toThrow(/mariadb's promise API/);
    } finally {
      connection.end(() => {});
    }
  });

  it('the driver flags a phantom transaction after a failed autocommit statement, which the adapter does not join', async () => {
    const connection = await pool.getConnection();
    try {
      await connection.query('CREATE TEMPORARY TABLE phantom (id INT PRIMARY KEY) ENGINE=InnoDB');
      await connection.query('INSERT INTO phantom VALUES (1)');
      await expect(connection.query('INSERT INTO phantom VALUES (1)')).rejects.toMatchObject({ errno: 1062 });
      expect((connection.info?.status ?? 0) & 1).toBe(1);

      let inside: boolean | undefined;
      await mariadbAdapter
        .run(connection, async () => {
          inside = mariadbAdapter.isActive(connection);
          await connection.query('INSERT INTO phantom VALUES (2)');
          throw new Error('undo');
        })
        .catch(() => {});

      expect(inside).toBe(true);
      expect(await connection.query('SELECT id FROM phantom ORDER BY id')).toEqual([{ id: 1 }]);
      expect(await mariadbKit.serverInTransaction(connection)).toBe(false);
      await connection.query('DROP TEMPORARY TABLE phantom');
    } finally {
      await connection.release();
    }
  });

  it('a COMMIT inside the decorated method is reported, since the two writes no longer commit together', async () => {
    const store = new MysqlHistoryStore(pool, { table });
    await store.ensureSchema();
    @Versioned()
    @HistoryTracked(store)
    class NoteService {
      async save(_note: { id: string; version?: number }, session: mariadb.Connection): Promise<void> {
        await session.commit();
      }
    }
    const id = orderId();
    const connection = await pool.getConnection();
    try {
      const error = await new NoteService().save({ id }, connection).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect(error).toMatchObject({ code: 'TRANSACTION_CLOSED', adapter: 'mariadb' });
      expect(await mariadbKit.serverInTransaction(connection)).toBe(false);
    } finally {
      await connection.release();
    }
  });
});
