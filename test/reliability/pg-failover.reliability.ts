import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionLostError,
  commitOutcome,
  expectedVersion,
  HistoryTracked,
  type HistoryWriter,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { useFigures } from './support/figures.js';
import { runsHere, uniqueName } from './support/targets.js';

const PRIMARY_URL = process.env.PG_PRIMARY_URL;
const STANDBY_URL = process.env.PG_STANDBY_URL;
const WRITERS = 4;
const DB = 'postgres primary + standby';
const figures = useFigures('pg-failover');
const run = promisify(execFile);

function standby(...args: string[]): Promise<unknown> {
  return run(join(process.cwd(), 'scripts', 'pg-standby.sh'), args, { timeout: 120_000 });
}

interface Account {
  id: string;
  balance: number;
  version?: number;
  timestamp?: Date;
}

/** The txId of the latest entry written for each entity, recorded as the store is handed the entry. */
const txIds = new Map<string, string | undefined>();

function accountService(table: string, store: PostgresHistoryStore) {
  const history: HistoryWriter<pg.PoolClient> = {
    save(entry, session) {
      txIds.set(entry.entityId, entry.txId);
      return store.save(entry, session);
    },
  };
  class AccountService {
    constructor(readonly history: HistoryWriter<pg.PoolClient>) {}

    @Versioned({ op: 'create' })
    @HistoryTracked('history', { entityType: 'Account', op: 'create' })
    async open(account: Account, client: pg.PoolClient): Promise<unknown> {
      return client.query(`INSERT INTO ${table} (id, balance, version) VALUES ($1, $2, $3)`, [
        account.id,
        account.balance,
        account.version,
      ]);
    }

    @Versioned({ op: 'update' })
    @HistoryTracked('history', { entityType: 'Account', op: 'update' })
    async deposit(account: Account, client: pg.PoolClient, amount: number): Promise<unknown> {
      account.balance += amount;
      return client.query(`UPDATE ${table} SET balance = $1, version = $2 WHERE id = $3 AND version = $4`, [
        account.balance,
        account.version,
        account.id,
        expectedVersion(account),
      ]);
    }
  }
  return new AccountService(history);
}

describe.runIf(
  runsHere(
    PRIMARY_URL === undefined || STANDBY_URL === undefined
      ? 'PG_PRIMARY_URL and PG_STANDBY_URL are not set (scripts/pg-standby.sh start; scripts/pg-standby.sh urls)'
      : undefined,
  ),
)('postgres: a primary with a synchronous streaming standby', () => {
  let primary: pg.Pool;
  let replica: pg.Pool;
  const table = uniqueName('fo_accounts');
  const historyTable = uniqueName('fo_history');

  beforeAll(async () => {
    await standby('start');
    primary = new pg.Pool({ connectionString: PRIMARY_URL, max: WRITERS + 2, connectionTimeoutMillis: 3_000 });
    replica = new pg.Pool({ connectionString: STANDBY_URL, max: 2 });
    primary.on('error', () => {});
    replica.on('error', () => {});
    await primary.query(
      `CREATE TABLE ${table} (id text PRIMARY KEY, balance integer NOT NULL, version integer NOT NULL)`,
    );
    await new PostgresHistoryStore(primary, { table: historyTable }).ensureSchema();
  });
  afterAll(async () => {
    await primary?.end();
    await replica?.end();
    // The failover leaves a primary without a standby: the next run starts a fresh pair.
    await standby('stop');
  });

  it('serves history reads from the standby, which can be behind the primary, and reads through the primary what must be current', async () => {
    const store = new PostgresHistoryStore(primary, { table: historyTable, readConnection: replica });
    expect(store.readConnection).toBe(replica);
    const accounts = accountService(table, store);
    const account: Account = { id: uniqueName('a'), balance: 0 };
    const client = await primary.connect();
    try {
      await accounts.open(account, client);
      // Synchronous replication waits for the standby's flush, not its replay: poll until it shows.
      for (let i = 0; i < 100 && (await store.latest('Account', account.id)) === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await store.latest('Account', account.id))?.version).toBe(1);
      await replica.query('SELECT pg_wal_replay_pause()');
      try {
        await accounts.deposit(account, client, 10);
        // The standby has the WAL but has not replayed it: its reads are one version behind.
        expect((await store.latest('Account', account.id))?.version).toBe(1);
        expect(await store.at('Account', account.id, 2)).toBeUndefined();
        // Through the session (the primary), the call's own write is there.
        expect((await store.latest('Account', account.id, { session: client }))?.version).toBe(2);
      } finally {
        await replica.query('SELECT pg_wal_replay_resume()');
      }
      for (let i = 0; i < 100 && (await store.latest('Account', account.id))?.version !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await store.list('Account', account.id)).map((e) => e.version)).toEqual([1, 2]);
      figures.add('clusters', 'calls', DB, 2);
      figures.add('clusters', 'history reads served by the standby', DB, 4);
    } finally {
      client.release();
    }
  });

  it('a failover during a stream of decorated updates: acknowledged calls are on the new primary, failed calls are typed, nothing is half-written, and commitOutcome resolves the unknown ones', async () => {
    const store = new PostgresHistoryStore(primary, { table: historyTable });
    const accounts = accountService(table, store);
    const ids = Array.from({ length: WRITERS }, () => uniqueName('a'));
    const acknowledged = new Map<string, { version: number; txId: string }[]>();
    const setup = await primary.connect();
    try {
      for (const id of ids) await accounts.open({ id, balance: 0 }, setup);
    } finally {
      setup.release();
    }
    const lost: ConnectionLostError[] = [];
    const quiet = new WeakSet<pg.PoolClient>();
    const other: unknown[] = [];
    let calls = 0;
    let failedOver = false;
    const writer = async (id: string): Promise<void> => {
      const account: Account = { id, balance: 0, version: 1 };
      for (;;) {
        let client: pg.PoolClient;
        try {
          client = await primary.connect();
        } catch {
          if (failedOver) return; // the old primary is gone: no more calls through its pool
          continue;
        }
        if (!quiet.has(client)) {
          // The failover ends connections the writer holds between calls, too.
          client.on('error', () => {});
          quiet.add(client);
        }
        calls++;
        try {
          await accounts.deposit(account, client, 1);
          const list = acknowledged.get(id) ?? [];
          list.push({ version: account.version as number, txId: txIds.get(id) as string });
          acknowledged.set(id, list);
          client.release();
        } catch (error) {
          client.release(true);
          if (error instanceof ConnectionLostError) lost.push(error);
          else if (!(error instanceof VersionConflictError)) other.push(error);
          return;
        }
      }
    };
    const writers = ids.map((id) => writer(id));
    // Let the stream run, then fail over in the middle of it.
    while (calls < WRITERS * 15) await new Promise((resolve) => setTimeout(resolve, 20));
    failedOver = true;
    await standby('failover');
    await Promise.all(writers);
    figures.add('clusters', 'failovers survived', DB);
    expect(other).toEqual([]);
    const promoted = new pg.Pool({ connectionString: STANDBY_URL, max: 2 });
    promoted.on('error', () => {});
    try {
      const after = new PostgresHistoryStore(promoted, { table: historyTable });
      const resolved = new Map<string, number>();
      for (const error of lost) {
        if (error.outcome === 'rolled-back') continue;
        const outcome = await commitOutcome(after, error);
        figures.add('clusters', `outcomes resolved: ${outcome.status}`, DB);
        expect(outcome.status, outcome.reason).not.toBe('unknown');
        if (outcome.status === 'committed') {
          const id = error.inFlight?.entityId as string;
          resolved.set(id, (resolved.get(id) ?? 0) + 1);
        }
      }
      for (const id of ids) {
        const { rows } = await promoted.query(`SELECT balance, version FROM ${table} WHERE id = $1`, [id]);
        const history = await after.list('Account', id);
        const acked = acknowledged.get(id) ?? [];
        const committed = acked.length + (resolved.get(id) ?? 0);
        const problems: string[] = [];
        // Every acknowledged call is on the new primary, with the txId it recorded.
        for (const { version, txId } of acked) {
          if (history.find((e) => e.version === version)?.txId !== txId)
            problems.push(`${id}: acknowledged v${version} missing`);
        }
        if (rows[0]?.version !== 1 + committed)
          problems.push(`${id}: version ${rows[0]?.version}, committed ${1 + committed}`);
        if (rows[0]?.balance !== committed) problems.push(`${id}: balance ${rows[0]?.balance}, committed ${committed}`);
        if (history.map((e) => e.version).join() !== Array.from({ length: 1 + committed }, (_, i) => i + 1).join()) {
          problems.push(`${id}: history ${history.map((e) => e.version).join()}`);
        }
        figures.add('invariants', 'checks', DB);
        figures.add('invariants', 'invariant violations', DB, problems.length);
        expect(problems).toEqual([]);
      }
      figures.add('clusters', 'calls', DB, calls);
      figures.add('clusters', 'calls failed with ConnectionLostError', DB, lost.length);
      expect(lost.length, 'the failover broke the calls in flight').toBeGreaterThan(0);
    } finally {
      await promoted.end();
    }
  });
});
