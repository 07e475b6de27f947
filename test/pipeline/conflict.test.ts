import { describe, expect, it } from 'vitest';
import { defaultConflict } from '../../src/index.js';

describe('the default conflict check', () => {
  it.each([
    ['MongoDB updateOne', { acknowledged: true, matchedCount: 0, modifiedCount: 0 }],
    ['MongoDB deleteOne', { acknowledged: true, deletedCount: 0 }],
    ['pg UPDATE', { command: 'UPDATE', rowCount: 0 }],
    ['pg DELETE', { command: 'DELETE', rowCount: 0 }],
    ['mariadb', { affectedRows: 0, insertId: 0n, warningStatus: 0 }],
    ['mysql2 [result, fields]', [{ affectedRows: 0 }, undefined]],
    ['better-sqlite3', { changes: 0, lastInsertRowid: 0 }],
    ['TypeORM', { raw: [], affected: 0 }],
    [
      'TypeORM on MySQL without affected (0.2)',
      { raw: { affectedRows: 0, insertId: 0 }, affected: undefined, generatedMaps: [] },
    ],
    ['Prisma updateMany', { count: 0 }],
    ['Kysely updateTable', { numUpdatedRows: 0n }],
    ['Kysely deleteFrom', { numDeletedRows: 0n }],
    ['false', false],
  ])('reads %s matching nothing as a conflict', (_, result) => {
    expect(defaultConflict(result)).toBe(true);
  });

  it.each([
    ['MongoDB updateOne that matched', { matchedCount: 1, modifiedCount: 0 }],
    ['pg UPDATE that matched', { command: 'UPDATE', rowCount: 1 }],
    ['pg SELECT with no rows', { command: 'SELECT', rowCount: 0 }],
    ['TypeORM on MySQL without affected, one row matched', { raw: { affectedRows: 1 }, affected: undefined }],
    ['undefined', undefined],
    ['null', null],
    ['0', 0],
    ['an empty array', []],
  ])('reads %s as no conflict', (_, result) => {
    expect(defaultConflict(result)).toBe(false);
  });
});

describe('a create whose entity already exists', () => {
  it('is a VersionConflictError that says it already exists, whether the row or the history key refuses it', async () => {
    const Database = (await import('better-sqlite3')).default;
    const { HistoryTracked, Versioned, VersionConflictError } = await import('../../src/index.js');
    const { SqliteHistoryStore } = await import('../../src/sqlite/index.js');
    const db = new Database(':memory:');
    db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, version INTEGER)');
    const history = new SqliteHistoryStore(db);
    await history.ensureSchema();
    let insertRow = true;
    @Versioned()
    @HistoryTracked(history, { entityType: 'Order' })
    class Orders {
      async save(order: { id: string; version?: number }, session: InstanceType<typeof Database>) {
        if (insertRow) session.prepare('INSERT INTO orders VALUES (?, ?)').run(order.id, order.version);
      }
    }
    const orders = new Orders();
    await orders.save({ id: 'o1' }, db);
    const failures: unknown[] = [];
    // The row's primary key refuses the second create.
    await orders.save({ id: 'o1' }, db).catch((error: unknown) => failures.push(error));
    // No row of its own: the history key (version 1 is taken) refuses it.
    insertRow = false;
    await orders.save({ id: 'o1' }, db).catch((error: unknown) => failures.push(error));
    expect(failures).toHaveLength(2);
    for (const error of failures) {
      expect(error).toBeInstanceOf(VersionConflictError);
      expect((error as InstanceType<typeof VersionConflictError>).duplicate).toBe(true);
      expect((error as Error).message).toMatch(/^Order o1 already exists/);
      expect((error as Error).message).not.toMatch(/changed by another writer|reload/);
    }
    db.close();
  });
});
