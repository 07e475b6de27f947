import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';
import { MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { mariadbAdapter, mysql2Adapter } from '../../src/mysql/index.js';
import { findAdapter } from '../../src/transactions/registry.js';

/** Methods both MySQL drivers' connections have, on an object that is neither. */
function lookalike(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const noop = async () => undefined;
  return { beginTransaction: noop, commit: noop, rollback: noop, query: noop, execute: noop, ...extra };
}

describe('the MySQL adapters match structurally, without a server', () => {
  const sqlite = new Database(':memory:');
  const mongo = new MongoClient('mongodb://127.0.0.1:9', { serverSelectionTimeoutMS: 100 });
  const mysqlPool = mysql.createPool({ host: '127.0.0.1', port: 9 });

  afterAll(async () => {
    sqlite.close();
    await mongo.close();
    await mysqlPool.end();
  });

  it('take no pg client, PGlite instance, better-sqlite3 Database, MongoDB ClientSession or mysql2 pool', async () => {
    const session = mongo.startSession();
    // PGlite's methods live on its prototype; an instance without its WebAssembly start-up has them all.
    const pglite = Object.create(PGlite.prototype) as PGlite;
    try {
      for (const other of [new pg.Client(), pglite, sqlite, session, mysqlPool, mysqlPool.pool]) {
        expect(mysql2Adapter.matches(other)).toBe(false);
        expect(mariadbAdapter.matches(other)).toBe(false);
      }
      expect(findAdapter(session)?.name).not.toMatch(/mysql2|mariadb/);
    } finally {
      await session.endSession();
    }
  });

  it('tell mysql2 connections (which wrap a callback connection) from mariadb ones (which have batch and info)', () => {
    const core = { promise: () => undefined, query: () => undefined };
    const mysql2Like = lookalike({ connection: core });
    const mariadbLike = lookalike({ batch: async () => undefined, info: { status: 2 } });

    expect([mysql2Adapter.matches(mysql2Like), mariadbAdapter.matches(mysql2Like)]).toEqual([true, false]);
    expect([mysql2Adapter.matches(mariadbLike), mariadbAdapter.matches(mariadbLike)]).toEqual([false, true]);
    expect(mysql2Adapter.matches(lookalike())).toBe(false);
    expect(mariadbAdapter.matches(lookalike({ batch: async () => undefined }))).toBe(false);
    expect(mysql2Adapter.matches(null)).toBe(false);
    expect(mariadbAdapter.matches('mysql://')).toBe(false);
  });

  it('take no callback-API connection, whose beginTransaction wants a callback', () => {
    const callbackStyle = (extra: Record<string, unknown>) => ({
      ...lookalike(extra),
      beginTransaction: (callback: () => void) => callback(),
    });
    expect(
      mysql2Adapter.matches(callbackStyle({ connection: { promise: () => undefined, query: () => undefined } })),
    ).toBe(false);
    expect(mariadbAdapter.matches(callbackStyle({ batch: () => undefined, info: { status: 2 } }))).toBe(false);
  });
});
