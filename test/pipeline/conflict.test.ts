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
