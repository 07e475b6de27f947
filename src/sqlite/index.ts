export type { SqliteDatabaseLike } from '../transactions/sqlite.js';
export { sqliteAdapter } from '../transactions/sqlite.js';
export type {
  SqliteConnectionLike,
  SqliteHistoryStoreOptions,
  SqliteStatementLike,
} from './sqlite-store.js';
export { SqliteHistoryStore } from './sqlite-store.js';
