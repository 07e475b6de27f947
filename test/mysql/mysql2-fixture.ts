import mysql from 'mysql2/promise';
import type { TransactionAdapter } from '../../src/index.js';
import type { MysqlQueryable } from '../../src/mysql/index.js';
import { mysql2Adapter } from '../../src/mysql/index.js';
import { addSqlModes, type ConnectOptions, connectionOptions, type MysqlDriverKit, MysqlFixture } from './support.js';

type Target = mysql.Pool | mysql.Connection;

function settings(options: ConnectOptions = {}) {
  return {
    ...connectionOptions(),
    ...(options.timezone === undefined ? {} : { timezone: options.timezone }),
    ...options.driver,
  };
}

/** mysql2/promise as the MySQL tests use it. */
export const mysql2Kit: MysqlDriverKit<mysql.PoolConnection, mysql.Pool> = {
  name: 'mysql2',
  sharesCallerTxId: true,
  adapter: mysql2Adapter as unknown as TransactionAdapter<mysql.PoolConnection>,
  shapeChangingOptions: {
    rowsAsArray: true,
    namedPlaceholders: true,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  },
  createPool: (options) => {
    const pool = mysql.createPool({ ...settings(options), connectionLimit: 8 });
    const modes = options?.sqlModes;
    // Queued on the new connection before anything the pool hands it out for.
    if (modes?.length) pool.pool.on('connection', (connection) => connection.query(addSqlModes(modes)));
    return pool;
  },
  // A single connection behaves like a pooled one for everything the tests do.
  connect: async (options) => {
    const connection = (await mysql.createConnection(settings(options))) as mysql.PoolConnection;
    if (options?.sqlModes?.length) await connection.query(addSqlModes(options.sqlModes));
    return connection;
  },
  getConnection: (pool) => pool.getConnection(),
  release: async (connection) => connection.release(),
  close: (connection) => connection.end(),
  endPool: (pool) => pool.end(),
  queryable: (target) => target as MysqlQueryable,
  exec: async (target: Target, sql, values = []) => (await target.query(sql, values))[0],
  serverInTransaction: async (connection) => {
    const [header] = (await connection.query('DO 0')) as unknown as [mysql.ResultSetHeader];
    return (header.serverStatus & 1) !== 0;
  },
  threadId: (connection) => connection.threadId,
  beginTransaction: (connection) => connection.beginTransaction(),
  commit: (connection) => connection.commit(),
  rollback: (connection) => connection.rollback(),
};

/** The shared behaviour suite's fixture for mysql2/promise: a pool, a PoolConnection per session. */
export class Mysql2Fixture extends MysqlFixture<mysql.PoolConnection, mysql.Pool> {
  constructor() {
    super(mysql2Kit);
  }
}
