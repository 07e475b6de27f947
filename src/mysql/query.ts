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
 * pool or connection. Only `query(options, values)` is used.
 *
 * ```ts
 * const db: MysqlQueryable = mysql.createPool(process.env.MYSQL_URL); // from mysql2/promise
 * ```
 */
export interface MysqlQueryable {
  query(options: MysqlQueryOptions, values?: unknown[]): Promise<unknown>;
}

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

const promised = new WeakMap<object, MysqlQueryable>();

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
  const result = await db.query(options, values);
  const isMariadb = typeof (db as { batch?: unknown }).batch === 'function';
  return !isMariadb && Array.isArray(result) ? result[0] : result;
}

/** @internal The rows of a SELECT, as plain objects keyed by column name. */
export async function selectRows<Row>(db: MysqlQueryable, sql: string, values: unknown[]): Promise<Row[]> {
  const rows = await runQuery(db, sql, values);
  return Array.isArray(rows) ? (rows as Row[]) : [];
}
