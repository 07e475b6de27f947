import Database from 'better-sqlite3';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import knex from 'knex';
import { Kysely, SqliteDialect } from 'kysely';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAdapter } from '../../src/transactions/registry.js';

/**
 * Every ORM session and every driver session is claimed by its own adapter: the ORM adapters
 * come after the driver ones in the built-in list, and neither kind looks like the other.
 */
describe('built-in adapter matching across ORMs and drivers', () => {
  const sqlite = new Database(':memory:');
  const pool = new pg.Pool({ connectionString: 'postgres://127.0.0.1:1/none' });
  const knexSqlite = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  const kysely = new Kysely({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  const mongo = new MongoClient('mongodb://127.0.0.1:1/none');
  const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });

  beforeAll(async () => {
    await dataSource.initialize();
  });

  afterAll(async () => {
    await Promise.all([knexSqlite.destroy(), kysely.destroy(), dataSource.destroy(), pool.end(), mongo.close()]);
    sqlite.close();
  });

  it('drivers stay with their driver adapters', () => {
    expect(findAdapter(new pg.Client())?.name).toBe('pg');
    expect(findAdapter(sqlite)?.name).toBe('better-sqlite3');
    const session = mongo.startSession();
    expect(findAdapter(session)?.name).toBe('mongodb');
    void session.endSession();
  });

  it('a pg Pool goes to the pool adapter, which takes a client for each call', () => {
    expect(findAdapter(pool)?.name).toBe('pg-pool');
  });

  it('TypeORM’s DataSource, root manager, QueryRunner and transaction manager go to the typeorm adapter', async () => {
    expect(findAdapter(dataSource)?.name).toBe('typeorm');
    expect(findAdapter(dataSource.manager)?.name).toBe('typeorm');
    const runner = dataSource.createQueryRunner();
    try {
      expect(findAdapter(runner)?.name).toBe('typeorm');
    } finally {
      await runner.release();
    }
    await dataSource.transaction(async (manager) => {
      expect(findAdapter(manager)?.name).toBe('typeorm');
    });
  });

  it('a Knex instance and its transaction go to the knex adapter', async () => {
    expect(findAdapter(knexSqlite)?.name).toBe('knex');
    await knexSqlite.transaction(async (trx) => {
      expect(findAdapter(trx)?.name).toBe('knex');
    });
  });

  it('a Kysely instance and its transaction go to the kysely adapter', async () => {
    expect(findAdapter(kysely)?.name).toBe('kysely');
    await kysely.transaction().execute(async (trx) => {
      expect(findAdapter(trx)?.name).toBe('kysely');
    });
  });

  it('Drizzle databases of both flavours go to the drizzle adapter, not to the driver underneath', () => {
    expect(findAdapter(drizzlePg(pool))?.name).toBe('drizzle');
    expect(findAdapter(drizzleSqlite(sqlite))?.name).toBe('drizzle');
  });
});
