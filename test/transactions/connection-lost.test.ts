import { describe, expect, it } from 'vitest';
import { isConnectionLost } from '../../src/transactions/connection-lost.js';

function errorWith(fields: Record<string, unknown>, message = 'failed'): Error {
  return Object.assign(new Error(message), fields);
}

describe('isConnectionLost', () => {
  it.each([
    [
      'pg_terminate_backend (57P01)',
      errorWith({ code: '57P01' }, 'terminating connection due to administrator command'),
    ],
    ['a pg connection exception (08006)', errorWith({ code: '08006' })],
    ['a pg client whose socket closed', new Error('Connection terminated unexpectedly')],
    ['an ended pg client', new Error('Client was closed and is not queryable')],
    ['MariaDB KILL CONNECTION (1927)', errorWith({ errno: 1927, sqlState: '70100' })],
    ['MySQL server gone away (2006)', errorWith({ errno: 2006 })],
    ['a mariadb fatal error', errorWith({ fatal: true, sqlState: '08S01' })],
    ['a reset socket', errorWith({ code: 'ECONNRESET' })],
    ['mysql2 after the connection closed', new Error("Can't add new command when connection is in closed state")],
    ['a closed better-sqlite3 Database', new TypeError('The database connection is not open')],
  ])('recognises %s', (_, error) => {
    expect(isConnectionLost(error)).toBe(true);
  });

  it.each([
    ['a unique violation', errorWith({ code: '23505' })],
    ['a serialization failure', errorWith({ code: '40001' })],
    ['a duplicate entry', errorWith({ errno: 1062, sqlState: '23000' })],
    ['a SQLite constraint', errorWith({ code: 'SQLITE_CONSTRAINT_UNIQUE' })],
    ['an error of the user', new Error('insufficient funds')],
    ['a string', 'Connection terminated'],
    ['null', null],
  ])('does not take %s for a lost connection', (_, error) => {
    expect(isConnectionLost(error)).toBe(false);
  });
});
