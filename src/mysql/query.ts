import { shared } from '../shared-state.js';

/**
 * The options object both drivers accept in place of the SQL text. The store sets the options
 * that change the shape of rows, so that a pool configured with them still reads back.
 *
 * ```ts
 * await pool.query({ sql: 'SELECT 1 AS one', rowsAsArray: false }, []);
 * ```
 */
export interface MysqlQueryOptions {
  readonly sql: string;
  readonly rowsAsArray?: boolean;
  readonly nestTables?: boolean;
  readonly namedPlaceholders?: boolean;
  readonly metaAsArray?: boolean;
}

/**
 * What the MySQL store queries through: a `mysql2/promise` pool or connection, or a `mariadb`
 * pool or connection. Statements with values go through `execute(options, values)` (a
 * prepared statement: the values travel apart from the SQL, so no escaping is involved and
 * the session's `sql_mode`, `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES`, cannot change what they
 * mean); both drivers have it. Statements without values (the DDL of `ensureSchema`) use
 * `query(options)`. An object without `execute` (a wrapper of your own) gets `query(options,
 * values)`, and must then keep the values apart from the SQL itself.
 *
 * ```ts
 * const db: MysqlQueryable = mysql.createPool(process.env.MYSQL_URL); // from mysql2/promise
 * ```
 */
export interface MysqlQueryable {
  query(options: MysqlQueryOptions, values?: unknown[]): Promise<unknown>;
  execute?(options: MysqlQueryOptions, values?: MysqlValue[]): Promise<unknown>;
}

/**
 * A value the store binds to a statement: text (keys, JSON, UTC timestamps, LIMIT), an integer
 * (versions) or NULL.
 *
 * ```ts
 * const values: MysqlValue[] = ['Order', '42', 3];
 * ```
 */
export type MysqlValue = string | number | null;

/**
 * A callback-API mysql2 pool or connection, used through its `.promise()` counterpart.
 *
 * ```ts
 * const db: MysqlCallbackQueryable = require('mysql2').createPool(url);
 * ```
 */
export interface MysqlCallbackQueryable {
  promise(): MysqlQueryable;
}

const promised = shared('mysql-promised-queryables', () => new WeakMap<object, MysqlQueryable>());

/**
 * @internal What a callback-API pool or connection that the store cannot use is, or `undefined`:
 * the `mysql` driver (mysqljs) and `mariadb/callback` take `query(sql, values, callback)` and
 * return no promise, so the store would never see a result or an error. Recognised by that
 * three-argument `query` without a `promise()` counterpart (which mysql2's callback objects have).
 */
export function callbackDriverOf(db: unknown): 'mysql' | 'mariadb/callback' | undefined {
  if (db === null || typeof db !== 'object') return undefined;
  const candidate = db as { query?: unknown; promise?: unknown; batch?: unknown };
  if (typeof candidate.query !== 'function' || typeof candidate.promise === 'function') return undefined;
  if (candidate.query.length < 3) return undefined;
  return typeof candidate.batch === 'function' ? 'mariadb/callback' : 'mysql';
}

/** @internal The TypeError for a callback-API object, naming the promise API to use instead. */
export function callbackDriverError(what: string, driver: 'mysql' | 'mariadb/callback'): TypeError {
  return driver === 'mysql'
    ? new TypeError(
        `${what} was given a pool or connection of the \`mysql\` driver (mysqljs), whose callback API returns no promise, ` +
          'so failed writes would go unnoticed. Use mysql2 instead (its API is the same): ' +
          "import mysql from 'mysql2/promise' and pass mysql.createPool(...) or a connection from it, " +
          "or a callback pool of require('mysql2'), which the library uses through .promise().",
      )
    : new TypeError(
        `${what} was given a pool or connection of mariadb's callback API (mariadb/callback), which returns no promise, ` +
          "so failed writes would go unnoticed. Use mariadb's promise API: import * as mariadb from 'mariadb' and pass " +
          'mariadb.createPool(...) or a connection from it.',
      );
}

/** @internal The promise-API object to query through, or `undefined` when `db` is neither a pool nor a connection of either driver. */
export function queryableOf(db: unknown): MysqlQueryable | undefined {
  if (db === null || typeof db !== 'object') return undefined;
  const candidate = db as Partial<MysqlQueryable & MysqlCallbackQueryable>;
  // mysql2's callback pools and connections have `promise()`; its promise ones and mariadb's do not.
  if (typeof candidate.promise === 'function') {
    const known = promised.get(db);
    if (known !== undefined) return known;
    const wrapped = candidate.promise();
    promised.set(db, wrapped);
    return wrapped;
  }
  return typeof candidate.query === 'function' ? (candidate as MysqlQueryable) : undefined;
}

/**
 * @internal Runs one statement and returns what it yielded, the same for both drivers: the rows of a
 * SELECT, or the OK result of a write. mysql2 resolves `[rows, fields]`, mariadb the rows alone
 * (mariadb pools and connections are the ones with `batch`).
 */
export async function runQuery(db: MysqlQueryable, sql: string, values: unknown[] = []): Promise<unknown> {
  const options = { sql, rowsAsArray: false, nestTables: false, namedPlaceholders: false, metaAsArray: false };
  // Values go to the server apart from the SQL (a prepared statement, cached by both drivers per
  // connection): mysql2's client-side interpolation escapes with backslashes whatever the session's
  // sql_mode, so under NO_BACKSLASH_ESCAPES a quote in a value would end the literal.
  const pending =
    values.length > 0 && typeof db.execute === 'function'
      ? db.execute(options, values as MysqlValue[])
      : db.query(options, values);
  if (typeof (pending as { then?: unknown } | undefined)?.then !== 'function') {
    throw new TypeError(
      'The MySQL pool or connection returned no promise from query(): it is a callback API (the mysql driver, or ' +
        'mariadb/callback). Pass a mysql2/promise or mariadb promise pool or connection.',
    );
  }
  const result = await pending;
  const isMariadb = typeof (db as { batch?: unknown }).batch === 'function';
  return !isMariadb && Array.isArray(result) ? result[0] : result;
}

/** @internal The rows of a SELECT, as plain objects keyed by column name. */
export async function selectRows<Row>(db: MysqlQueryable, sql: string, values: unknown[]): Promise<Row[]> {
  const rows = await runQuery(db, sql, values);
  return Array.isArray(rows) ? (rows as Row[]) : [];
}
