export type { PgAdapterOptions, PgClientLike } from '../transactions/pg.js';
export { createPgAdapter, pgAdapter } from '../transactions/pg.js';
export type { PGliteLike, PGliteSession, PGliteTransactionLike } from '../transactions/pglite.js';
export { createPgliteAdapter, pgliteAdapter } from '../transactions/pglite.js';
export type { PostgresIsolationLevel, PostgresTransactionIdSource } from '../transactions/sql-state.js';
export type { PostgresHistoryStoreOptions, PostgresQueryable } from './postgres-store.js';
export { PostgresHistoryStore } from './postgres-store.js';
