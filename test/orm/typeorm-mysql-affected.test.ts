import { DataSource, type EntityManager, EntitySchema, type UpdateResult } from 'typeorm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  expectedVersion,
  HistoryTracked,
  MemoryHistoryStore,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { connectionOptions, describeMysql, uniqueTable } from '../mysql/support.js';

interface Row {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

const table = uniqueTable('affected');
const schema = new EntitySchema<Row>({
  name: `Row_${table}`,
  tableName: table,
  columns: {
    id: { type: 'varchar', length: 64, primary: true },
    total: { type: 'int' },
    version: { type: 'int' },
    timestamp: { type: 'datetime', precision: 3 },
  },
});

type Update = (manager: EntityManager, row: Row) => Promise<UpdateResult>;

/** The guarded update as TypeORM 1.x answers it: `affected` from the driver's `affectedRows`, `raw` empty. */
const typeorm1x: Update = (manager, row) =>
  manager.update(
    schema,
    { id: row.id, version: expectedVersion(row) },
    { total: row.total, version: row.version, timestamp: row.timestamp },
  );

/**
 * The same update as TypeORM 0.2's UpdateQueryBuilder answered it on MySQL: the driver's own result
 * (mysql2's ResultSetHeader, here from the server) as `raw`, and `affected` left undefined.
 */
const typeorm02: Update = async (manager, row) => ({
  raw: await manager.query(`UPDATE ${table} SET total = ?, version = ?, timestamp = ? WHERE id = ? AND version = ?`, [
    row.total,
    row.version,
    row.timestamp,
    row.id,
    expectedVersion(row),
  ]),
  affected: undefined,
  generatedMaps: [],
});

for (const type of ['mysql', 'mariadb'] as const) {
  describeMysql(`TypeORM's ${type} driver (mysql2 underneath): a guarded update that matches nothing`, () => {
    let dataSource: DataSource;

    beforeAll(async () => {
      const { user, ...rest } = connectionOptions();
      dataSource = new DataSource({ type, ...rest, username: user, entities: [schema], timezone: 'Z' });
      await dataSource.initialize();
      await dataSource.synchronize();
    });

    afterAll(async () => {
      await dataSource?.query(`DROP TABLE IF EXISTS ${table}`);
      await dataSource?.destroy();
    });

    const service = (write: Update) => {
      class Orders {
        history = new MemoryHistoryStore();
        @Versioned()
        @HistoryTracked('history', { entityType: 'Row' })
        async save(row: Row, manager: EntityManager) {
          return manager.insert(schema, row);
        }
        // No history on update: its unique key would catch the lost race too, and only the result is under test.
        @Versioned()
        async update(row: Row, manager: EntityManager) {
          return write(manager, row);
        }
      }
      return new Orders();
    };

    it.each([
      ['as TypeORM 1.x returns it (affected from affectedRows)', typeorm1x],
      ['with affected undefined, as TypeORM 0.2 returns it (raw.affectedRows read)', typeorm02],
    ])('is a VersionConflictError %s', async (_, write) => {
      const orders = service(write);
      const id = `${type}-${write === typeorm02 ? '02' : '1x'}`;
      await orders.save({ id, total: 1 }, dataSource.manager);
      const stale: Row = { id, total: 2, version: 1 };
      await orders.update({ ...stale }, dataSource.manager);
      await expect(orders.update({ ...stale, total: 3 }, dataSource.manager)).rejects.toBeInstanceOf(
        VersionConflictError,
      );
      const [row] = await dataSource.query(`SELECT total, version FROM ${table} WHERE id = ?`, [id]);
      expect(row).toMatchObject({ total: 2, version: 2 });
    });
  });
}
