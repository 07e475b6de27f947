import { MysqlHistoryStore } from '../mysql/mysql-store.js';
import { PostgresHistoryStore } from '../postgres/postgres-store.js';
import { SqliteHistoryStore } from '../sqlite/sqlite-store.js';
import type { TypeOrmDataSourceLike } from './typeorm.js';

/**
 * The built-in history store for the database a TypeORM `DataSource` drives, on the pool (or
 * database) TypeORM already holds: `PostgresHistoryStore` on its pg pool (`postgres`),
 * `MysqlHistoryStore` on its mysql2 pool (`mysql`, `mariadb`), `SqliteHistoryStore` on its
 * better-sqlite3 database (`better-sqlite3`). Call it once the data source is initialized.
 *
 * ```ts
 * const store = typeormHistoryStore(dataSource, { table: 'entity_history' });
 * await store.ensureSchema();
 * ```
 */
export function typeormHistoryStore(
  dataSource: TypeOrmDataSourceLike & { readonly driver: object },
  options: { readonly table?: string } = {},
): PostgresHistoryStore | MysqlHistoryStore | SqliteHistoryStore {
  const driver = dataSource.driver as Record<string, unknown>;
  const type = String(dataSource.options.type);
  const held = (name: string): never => {
    const value = driver[name];
    if (value === undefined || value === null) {
      throw new TypeError(
        `typeormHistoryStore found no ${name} on the ${type} DataSource's driver: initialize the DataSource first ` +
          '(await dataSource.initialize(), or build the store in a factory that runs after TypeOrmModule).',
      );
    }
    return value as never;
  };
  switch (type) {
    case 'postgres':
      return new PostgresHistoryStore(held('master'), options);
    case 'mysql':
    case 'mariadb':
      return new MysqlHistoryStore(held('pool'), options);
    case 'better-sqlite3':
      return new SqliteHistoryStore(held('databaseConnection'), options);
    default:
      throw new TypeError(
        `typeormHistoryStore has no built-in store for TypeORM's '${type}' driver (postgres, mysql, mariadb and ` +
          'better-sqlite3 have one). Construct a store of your own and pass it as the store.',
      );
  }
}
