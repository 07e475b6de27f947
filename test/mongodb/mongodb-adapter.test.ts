import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';
import { MongoClient, MongoServerError } from 'mongodb';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionEndedError } from '../../src/index.js';
import { type MongoSessionLike, mongodbAdapter } from '../../src/transactions/mongodb.js';
import { findAdapter } from '../../src/transactions/registry.js';

/** Never connects: sessions are created client-side. */
const client = new MongoClient('mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100');

afterAll(async () => {
  await client.close();
});

/** A ClientSession look-alike that logs what the adapter does to it. */
class ScriptedSession implements MongoSessionLike {
  readonly log: string[] = [];
  hasEnded = false;
  active = false;
  readonly commitFailures: unknown[] = [];
  abortFailure: unknown;

  startTransaction(): void {
    this.log.push('start');
    this.active = true;
  }

  async commitTransaction(): Promise<void> {
    this.log.push('commit');
    this.active = false;
    const failure = this.commitFailures.shift();
    if (failure !== undefined) throw failure;
  }

  async abortTransaction(): Promise<void> {
    this.log.push('abort');
    this.active = false;
    if (this.abortFailure !== undefined) throw this.abortFailure;
  }

  inTransaction(): boolean {
    return this.active;
  }

  async withTransaction(): Promise<void> {
    throw new Error('the adapter must not use withTransaction');
  }
}

const labelled = (label: string, code = 251) => new MongoServerError({ message: label, code, errorLabels: [label] });

describe('matching sessions', () => {
  it('recognises the driver’s ClientSession, before any other built-in adapter', async () => {
    const session = client.startSession();
    try {
      expect(mongodbAdapter.matches(session)).toBe(true);
      expect(findAdapter(session)?.name).toBe('mongodb');
    } finally {
      await session.endSession();
    }
  });

  it('does not mistake a pg client, PGlite, mysql2 connections or a better-sqlite3 database for one', () => {
    const sqlite = new Database(':memory:');
    try {
      const others: unknown[] = [
        new pg.Client(),
        Object.create(PGlite.prototype),
        Object.create(mysql.Connection.prototype),
        Object.create(mysqlPromise.Connection.prototype),
        sqlite,
        { startTransaction() {}, commitTransaction() {}, abortTransaction() {}, inTransaction: () => false },
        null,
        'session',
      ];
      for (const other of others) expect(mongodbAdapter.matches(other)).toBe(false);
    } finally {
      sqlite.close();
    }
  });
});

describe('running a transaction', () => {
  it('starts, runs the work and commits, without withTransaction', async () => {
    const session = new ScriptedSession();
    const result = await mongodbAdapter.run(session, async () => {
      session.log.push('work');
      return 42;
    });
    expect(result).toBe(42);
    expect(session.log).toEqual(['start', 'work', 'commit']);
  });

  it('aborts when the work fails and rethrows the work’s error', async () => {
    const session = new ScriptedSession();
    const failure = new Error('work failed');
    await expect(mongodbAdapter.run(session, () => Promise.reject(failure))).rejects.toBe(failure);
    expect(session.log).toEqual(['start', 'abort']);
  });

  it('never lets a failing abort hide the error that caused it', async () => {
    const session = new ScriptedSession();
    session.abortFailure = new Error('connection reset during abort');
    const failure = new Error('work failed');
    await expect(mongodbAdapter.run(session, () => Promise.reject(failure))).rejects.toBe(failure);
  });

  it('does not abort a transaction the work already ended', async () => {
    const session = new ScriptedSession();
    const failure = new Error('aborted inside');
    await expect(
      mongodbAdapter.run(session, async () => {
        await session.abortTransaction();
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(session.log).toEqual(['start', 'abort']);
  });

  it('sends the commit again, a bounded number of times, while its outcome is unknown', async () => {
    const session = new ScriptedSession();
    session.commitFailures.push(labelled('UnknownTransactionCommitResult', 50));
    await mongodbAdapter.run(session, async () => undefined);
    expect(session.log).toEqual(['start', 'commit', 'commit']);

    const stubborn = new ScriptedSession();
    const unknown = labelled('UnknownTransactionCommitResult', 50);
    stubborn.commitFailures.push(unknown, unknown, unknown, unknown);
    await expect(mongodbAdapter.run(stubborn, async () => undefined)).rejects.toBe(unknown);
    expect(stubborn.log).toEqual(['start', 'commit', 'commit', 'commit']);
  });

  it('does not resend a commit that failed for another reason, and does not abort after it', async () => {
    const session = new ScriptedSession();
    const failure = labelled('TransientTransactionError', 112);
    session.commitFailures.push(failure);
    await expect(mongodbAdapter.run(session, async () => undefined)).rejects.toBe(failure);
    expect(session.log).toEqual(['start', 'commit']);
  });

  it('refuses an ended session with SessionEndedError and starts nothing', async () => {
    const session = new ScriptedSession();
    session.hasEnded = true;
    const error = await mongodbAdapter.run(session, async () => undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionEndedError);
    expect(error).toMatchObject({ code: 'SESSION_ENDED', sessionType: 'MongoDB ClientSession' });
    expect((error as Error).message).toMatch(/startSession/);
    expect(session.log).toEqual([]);
  });

  it('reports an active transaction through inTransaction()', () => {
    const session = new ScriptedSession();
    expect(mongodbAdapter.isActive(session)).toBe(false);
    session.startTransaction();
    expect(mongodbAdapter.isActive(session)).toBe(true);
  });
});

describe('classifying driver errors', () => {
  it('treats duplicate keys and write conflicts as conflicts, and nothing else', () => {
    expect(mongodbAdapter.isConflict?.(new MongoServerError({ message: 'E11000', code: 11000 }))).toBe(true);
    expect(mongodbAdapter.isConflict?.(new MongoServerError({ message: 'WriteConflict', code: 112 }))).toBe(true);
    expect(mongodbAdapter.isConflict?.(new MongoServerError({ message: 'Unauthorized', code: 13 }))).toBe(false);
    expect(mongodbAdapter.isConflict?.(new Error('E11000 in the message only'))).toBe(false);
    expect(mongodbAdapter.isConflict?.(undefined)).toBe(false);
  });

  it('treats TransientTransactionError and UnknownTransactionCommitResult labels as transient', () => {
    expect(mongodbAdapter.isTransient?.(labelled('TransientTransactionError'))).toBe(true);
    expect(mongodbAdapter.isTransient?.(labelled('UnknownTransactionCommitResult'))).toBe(true);
    expect(mongodbAdapter.isTransient?.({ errorLabels: ['TransientTransactionError'] })).toBe(true);
    expect(mongodbAdapter.isTransient?.(labelled('RetryableWriteError'))).toBe(false);
    expect(mongodbAdapter.isTransient?.(new MongoServerError({ message: 'E11000', code: 11000 }))).toBe(false);
    expect(mongodbAdapter.isTransient?.('TransientTransactionError')).toBe(false);
  });
});

describe('transaction ids', () => {
  it('combine the session id with the txnNumber the transaction’s first command will carry', async () => {
    const session = client.startSession();
    try {
      const lsid = Buffer.from(session.id?.id.buffer ?? []).toString('hex');
      expect(lsid).toMatch(/^[0-9a-f]{32}$/);
      session.startTransaction();
      expect(mongodbAdapter.transactionId?.(session)).toBe(`${lsid}:1`);
      await session.abortTransaction();
      session.startTransaction();
      expect(mongodbAdapter.transactionId?.(session)).toBe(`${lsid}:2`);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
  });

  it('are undefined for a look-alike without the driver’s internals', () => {
    expect(mongodbAdapter.transactionId?.(new ScriptedSession())).toBeUndefined();
  });
});
