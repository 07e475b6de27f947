import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqliteAdapter } from '../../src/transactions/sqlite.js';

describe('better-sqlite3 join: a savepoint per joined call', () => {
  let db: Database.Database;
  const insert = (id: string) => db.prepare('INSERT INTO orders (id) VALUES (?)').run(id);
  const ids = () => (db.prepare('SELECT id FROM orders ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  const join = <R>(work: () => Promise<R>): Promise<R> => {
    const joinFn = sqliteAdapter.join;
    if (joinFn === undefined) throw new Error('the better-sqlite3 adapter has no join');
    return joinFn(db, work);
  };

  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY)');
  });
  afterEach(() => db.close());

  it('failed work (a constraint violation too) keeps none of its writes, nested joins too; the caller commits the rest', async () => {
    db.exec('BEGIN');
    insert('a-before');
    await expect(
      join(async () => {
        insert('b-dropped');
        throw new Error('the joined work failed');
      }),
    ).rejects.toThrow('the joined work failed');
    await expect(
      join(async () => {
        insert('c-dropped');
        insert('a-before');
      }),
    ).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(
      await join(async () => {
        insert('d-outer');
        await expect(
          join(async () => {
            insert('e-inner');
            throw new Error('inner');
          }),
        ).rejects.toThrow('inner');
        return 'done';
      }),
    ).toBe('done');
    insert('f-after');
    expect(db.inTransaction).toBe(true);
    db.exec('COMMIT');
    expect(ids()).toEqual(['a-before', 'd-outer', 'f-after']);
  });

  it('the caller’s ROLLBACK still discards what a successful join wrote', async () => {
    db.exec('BEGIN');
    await join(async () => {
      insert('joined');
    });
    db.exec('ROLLBACK');
    expect(ids()).toEqual([]);
  });

  it('concurrent joins on one Database run one after the other', async () => {
    db.exec('BEGIN');
    const results = await Promise.allSettled([
      join(async () => {
        insert('first');
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw new Error('first failed');
      }),
      join(async () => {
        insert('second');
      }),
    ]);
    db.exec('COMMIT');
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
    expect(ids()).toEqual(['second']);
  });
});
