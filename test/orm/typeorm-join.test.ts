import { randomUUID } from 'node:crypto';
import { DataSource, type QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentCall, HistoryTracked, MemoryHistoryStore, TransactionStateError, Versioned } from '../../src/index.js';
import { typeormAdapter } from '../../src/transactions/typeorm.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { connectionOptions, MYSQL_URL } from '../mysql/support.js';
import { uniqueName } from './orm-suite.js';

const DATABASE_URL = process.env.DATABASE_URL;

type Kind = 'postgres' | 'mariadb' | 'sqlite';

function dataSourceFor(kind: Kind): DataSource {
  if (kind === 'postgres') return new DataSource({ type: 'postgres', url: DATABASE_URL, poolSize: 3 });
  if (kind === 'mariadb') {
    const { user, ...rest } = connectionOptions();
    return new DataSource({ type: 'mariadb', ...rest, username: user, poolSize: 3 });
  }
  return new DataSource({ type: 'better-sqlite3', database: ':memory:' });
}

const unavailable = (kind: Kind): string | undefined =>
  kind === 'postgres' && !DATABASE_URL
    ? 'DATABASE_URL is not set'
    : kind === 'mariadb' && !MYSQL_URL
      ? 'MYSQL_URL is not set'
      : undefined;

function join<R>(session: Parameters<typeof typeormAdapter.run>[0], work: () => Promise<R>): Promise<R> {
  const joinFn = typeormAdapter.join;
  if (joinFn === undefined) throw new Error('the TypeORM adapter has no join');
  return joinFn(session, work);
}

for (const kind of ['postgres', 'mariadb', 'sqlite'] as const) {
  const missing = unavailable(kind);
  if (missing !== undefined && !REQUIRE_DATABASES) {
    describe.skip(`TypeORM on ${kind}: skipped because ${missing} (REQUIRE_DATABASES=1 makes this fail)`, () => {
      it('joins', () => {});
    });
    continue;
  }

  describe(`TypeORM on ${kind}: joined calls and transaction ids`, () => {
    const table = uniqueName('join_orders');
    let dataSource: DataSource;
    let runner: QueryRunner;
    const insert = (session: { query(sql: string): Promise<unknown> }, id: string) =>
      session.query(`INSERT INTO ${table} (id) VALUES ('${id}')`);
    const exists = async (id: string) =>
      ((await dataSource.query(`SELECT id FROM ${table} WHERE id = '${id}'`)) as unknown[]).length === 1;

    beforeAll(async () => {
      if (missing !== undefined) throw new Error(`REQUIRE_DATABASES=1, but TypeORM on ${kind} cannot run: ${missing}.`);
      dataSource = dataSourceFor(kind);
      await dataSource.initialize();
      await dataSource.query(`CREATE TABLE ${table} (id varchar(64) PRIMARY KEY)`);
      runner = dataSource.createQueryRunner();
      await runner.connect();
    });

    afterAll(async () => {
      await runner?.release();
      try {
        if (kind !== 'sqlite') await dataSource?.query(`DROP TABLE IF EXISTS ${table}`);
      } finally {
        await dataSource?.destroy();
      }
    });

    it('join on a QueryRunner: failed work (also a database error) keeps none of its writes, nested joins too; the caller commits the rest', async () => {
      const [before, dropped, outer, inner, after] = [1, 2, 3, 4, 5].map(() => randomUUID());
      await runner.startTransaction();
      try {
        await insert(runner, before as string);
        await expect(
          join(runner, async () => {
            await insert(runner, dropped as string);
            throw new Error('the joined work failed');
          }),
        ).rejects.toThrow('the joined work failed');
        await expect(join(runner, () => insert(runner, before as string))).rejects.toBeDefined();
        await join(runner, async () => {
          await insert(runner, outer as string);
          await expect(
            join(runner, async () => {
              await insert(runner, inner as string);
              throw new Error('the inner work failed');
            }),
          ).rejects.toThrow('the inner work failed');
        });
        await insert(runner, after as string);
        await runner.commitTransaction();
      } catch (error) {
        await runner.rollbackTransaction();
        throw error;
      }
      expect(await Promise.all([before, dropped, outer, inner, after].map((id) => exists(id as string)))).toEqual([
        true,
        false,
        true,
        false,
        true,
      ]);
    });

    it('join on the EntityManager of dataSource.transaction()', async () => {
      const [kept, dropped] = [randomUUID(), randomUUID()];
      await dataSource.transaction(async (manager) => {
        await insert(manager, kept);
        await expect(
          join(manager, async () => {
            await insert(manager, dropped);
            throw new Error('failed');
          }),
        ).rejects.toThrow('failed');
      });
      expect([await exists(kept), await exists(dropped)]).toEqual([true, false]);
    });

    it('join outside any transaction is a TransactionStateError, and nothing runs', async () => {
      const id = randomUUID();
      const error = await join(runner, () => insert(runner, id)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect((error as TransactionStateError).code).toBe('TRANSACTION_CLOSED');
      expect(await exists(id)).toBe(false);
    });

    it('every transaction on one QueryRunner gets its own txId, through the runner and through runner.manager', async () => {
      const store = new MemoryHistoryStore();
      const seen: { txId: string | undefined; database: string | undefined }[] = [];
      @Versioned()
      @HistoryTracked(store)
      class Orders {
        async save(order: { id: string }, session: { query(sql: string): Promise<unknown> }) {
          await insert(session, order.id);
          const database =
            kind === 'postgres'
              ? ((await session.query('SELECT pg_current_xact_id()::text AS id')) as { id: string }[])[0]?.id
              : undefined;
          seen.push({ txId: currentCall()?.txId, database });
        }
      }
      const orders = new Orders();
      await orders.save({ id: randomUUID() }, runner);
      await orders.save({ id: randomUUID() }, runner);
      await orders.save({ id: randomUUID() }, runner.manager);
      await orders.save({ id: randomUUID() }, runner.manager);
      await orders.save({ id: randomUUID() }, dataSource.manager);
      // Transactions the caller begins on the runner: the calls of one share its id, never a previous one's.
      for (const end of ['commit', 'rollback'] as const) {
        await runner.startTransaction();
        await orders.save({ id: randomUUID() }, runner.manager);
        await orders.save({ id: randomUUID() }, runner);
        if (end === 'commit') await runner.commitTransaction();
        else await runner.rollbackTransaction();
      }
      await dataSource.transaction(async (manager) => {
        await orders.save({ id: randomUUID() }, manager);
        await orders.save({ id: randomUUID() }, manager);
      });
      const ids = seen.map((s) => s.txId);
      expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
      const perTransaction = [...ids.slice(0, 5), ids[5], ids[7], ids[9]];
      expect(new Set(perTransaction).size).toBe(8);
      expect([ids[6], ids[8], ids[10]]).toEqual([ids[5], ids[7], ids[9]]);
      if (kind === 'postgres') {
        // The library's own transactions carry PostgreSQL's id of the transaction.
        for (const { txId, database } of seen.slice(0, 5)) expect(txId).toBe(database);
      }
    });
  });
}
