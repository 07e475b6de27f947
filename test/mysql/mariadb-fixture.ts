import * as mariadb from 'mariadb';
import type { TransactionAdapter } from '../../src/index.js';
import type { MysqlQueryable } from '../../src/mysql/index.js';
import { mariadbAdapter } from '../../src/mysql/index.js';
import { addSqlModes, type ConnectOptions, connectionOptions, type MysqlDriverKit, MysqlFixture } from './support.js';

type Target = mariadb.Pool | mariadb.Connection;

function settings(options: ConnectOptions = {}) {
  return {
    ...connectionOptions(),
    ...(options.timezone === undefined ? {} : { timezone: options.timezone }),
    ...(options.sqlModes?.length ? { initSql: addSqlModes(options.sqlModes) } : {}),
    ...options.driver,
  };
}

/** mariadb (promise API) as the MySQL tests use it. */
export const mariadbKit: MysqlDriverKit<mariadb.PoolConnection, mariadb.Pool> = {
  name: 'mariadb',
  sharesCallerTxId: false,
  adapter: mariadbAdapter as unknown as TransactionAdapter<mariadb.PoolConnection>,
  shapeChangingOptions: {
    rowsAsArray: true,
    metaAsArray: true,
    namedPlaceholders: true,
    dateStrings: true,
    autoJsonMap: false,
  },
  createPool: (options) => mariadb.createPool({ ...settings(options), connectionLimit: 8 }),
  // A single connection behaves like a pooled one for everything the tests do.
  connect: async (options) => (await mariadb.createConnection(settings(options))) as mariadb.PoolConnection,
  getConnection: (pool) => pool.getConnection(),
  release: (connection) => connection.release(),
  close: (connection) => connection.end(),
  endPool: (pool) => pool.end(),
  queryable: (target) => target as MysqlQueryable,
  exec: (target: Target, sql, values = []) => target.query(sql, values),
  serverInTransaction: async (connection) => {
    await connection.query('DO 0');
    return ((connection.info?.status ?? 0) & 1) !== 0;
  },
  threadId: (connection) => Number(connection.threadId),
  beginTransaction: (connection) => connection.beginTransaction(),
  commit: (connection) => connection.commit(),
  rollback: (connection) => connection.rollback(),
};

/** The shared behaviour suite's fixture for mariadb: a pool, a PoolConnection per session. */
export class MariadbFixture extends MysqlFixture<mariadb.PoolConnection, mariadb.Pool> {
  constructor() {
    super(mariadbKit);
  }
}
