export type { MariadbConnectionLike } from '../transactions/mariadb.js';
export { mariadbAdapter } from '../transactions/mariadb.js';
export type { MysqlTransactionalConnection } from '../transactions/mysql-common.js';
export type { Mysql2ConnectionLike } from '../transactions/mysql2.js';
export { mysql2Adapter } from '../transactions/mysql2.js';
export type { MysqlHistoryStoreOptions } from './mysql-store.js';
export { MysqlHistoryStore } from './mysql-store.js';
export type { MysqlCallbackQueryable, MysqlQueryable, MysqlQueryOptions, MysqlValue } from './query.js';
