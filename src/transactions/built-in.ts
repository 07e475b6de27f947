import type { TransactionAdapter } from './adapter.js';
import { drizzleAdapter } from './drizzle.js';
import { knexAdapter } from './knex.js';
import { kyselyAdapter } from './kysely.js';
import { mariadbAdapter } from './mariadb.js';
import { mongodbAdapter } from './mongodb.js';
import { mysql2Adapter } from './mysql2.js';
import { pgAdapter } from './pg.js';
import { pgliteAdapter } from './pglite.js';
import { mariadbPoolAdapter, mysql2PoolAdapter, pgPoolAdapter } from './pool.js';
import { prismaAdapter } from './prisma.js';
import { sqliteAdapter } from './sqlite.js';
import { typeormAdapter } from './typeorm.js';

/**
 * The adapters tried after the user's, in order. Each matches its driver's session
 * structurally; none imports a driver.
 */
export const builtInAdapters: readonly TransactionAdapter<unknown>[] = [
  mongodbAdapter as TransactionAdapter<unknown>,
  pgAdapter as TransactionAdapter<unknown>,
  pgliteAdapter as TransactionAdapter<unknown>,
  sqliteAdapter as TransactionAdapter<unknown>,
  mysql2Adapter as TransactionAdapter<unknown>,
  mariadbAdapter as TransactionAdapter<unknown>,
  // Pools, after the connections: a call takes a connection of its own, and gives it back.
  pgPoolAdapter as TransactionAdapter<unknown>,
  mysql2PoolAdapter as TransactionAdapter<unknown>,
  mariadbPoolAdapter as TransactionAdapter<unknown>,
  // ORM sessions, after the drivers: none of them looks like a driver connection, nor a driver connection like them.
  typeormAdapter as TransactionAdapter<unknown>,
  knexAdapter as TransactionAdapter<unknown>,
  kyselyAdapter as TransactionAdapter<unknown>,
  drizzleAdapter as TransactionAdapter<unknown>,
  prismaAdapter as TransactionAdapter<unknown>,
];
