import mysqlCallback from 'mysql2';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HistoryTracked, Versioned } from '../../src/index.js';
import { MysqlHistoryStore, mariadbAdapter, mysql2Adapter } from '../../src/mysql/index.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { orderId, runBehaviourSuite } from '../integration/behaviour.js';
import { runMysqlSuite } from './mysql-suite.js';
import { Mysql2Fixture, mysql2Kit } from './mysql2-fixture.js';
import { runMysqlSafetySuite } from './safety-suite.js';
import { connectionOptions, countRows, describeMysql, uniqueTable } from './support.js';

runBehaviourSuite(new Mysql2Fixture());
runMysqlSuite(mysql2Kit);
runMysqlSafetySuite(mysql2Kit);

describeMysql('MySQL (mysql2): callback-API objects', () => {
  const table = uniqueTable('eh_callback');
  let pool: mysqlCallback.Pool;

  beforeAll(() => {
    pool = mysqlCallback.createPool({ ...connectionOptions(), connectionLimit: 2 });
  });

  afterAll(async () => {
    if (pool === undefined) return;
    try {
      await pool.promise().query(`DROP TABLE IF EXISTS ${table}`);
    } finally {
      await pool.promise().end();
    }
  });

  it('a callback connection is not taken for a session, but its .promise() counterpart is', async () => {
    const promiseConnection = await pool.promise().getConnection();
    try {
      const callbackConnection = promiseConnection.connection as unknown as mysqlCallback.Connection;
      expect(findAdapter(callbackConnection)).toBeUndefined();
      expect(mariadbAdapter.matches(callbackConnection)).toBe(false);
      expect(mysql2Adapter.matches(callbackConnection.promise())).toBe(true);
      expect(mysql2Adapter.matches(promiseConnection)).toBe(true);
    } finally {
      promiseConnection.release();
    }
  });

  it('the store works on a callback pool (through .promise()), and a call through a .promise() connection commits', async () => {
    const store = new MysqlHistoryStore(pool, { table });
    await store.ensureSchema();
    @Versioned()
    @HistoryTracked(store)
    class NoteService {
      async save(note: { id: string; version?: number }, session: mysql.Connection): Promise<void> {
        await session.query('DO 0');
        expect(note.version).toBe(1);
      }
    }
    const id = orderId();
    const promiseConnection = await pool.promise().getConnection();
    try {
      const callbackConnection = promiseConnection.connection as unknown as mysqlCallback.Connection;
      await new NoteService().save({ id }, callbackConnection.promise());
    } finally {
      promiseConnection.release();
    }
    expect(await countRows(mysql2Kit, pool.promise(), table, 'Note', id)).toBe(1);
    expect((await store.latest('Note', id))?.version).toBe(1);
  });
});
