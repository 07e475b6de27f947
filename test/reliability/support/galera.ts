import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as mariadb from 'mariadb';
import { expectedVersion, HistoryTracked, Versioned } from '../../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../../src/mysql/index.js';
import { uniqueName } from './targets.js';

/** The nodes of the Galera test cluster (`scripts/galera.sh urls`), comma-separated. */
export const GALERA_URLS = process.env.GALERA_URLS?.split(',').filter((url) => url !== '');

const run = promisify(execFile);

/** Runs `scripts/galera.sh` (kill N, start-node N, status). */
export async function galera(...args: string[]): Promise<string> {
  const { stdout } = await run(join(process.cwd(), 'scripts', 'galera.sh'), args, { timeout: 180_000 });
  return stdout;
}

/** The node's number for `scripts/galera.sh` (1-based), from its place in GALERA_URLS. */
export function nodeNumber(index: number): string {
  return String(index + 1);
}

function settings(url: string) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 3306),
    user: decodeURIComponent(parsed.username || 'root'),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'test',
  };
}

export interface Wallet {
  id: string;
  balance: number;
  version?: number;
  timestamp?: Date;
}

/** One node as a writer sees it: its own pool, the history store on it, the decorated service. */
export interface GaleraNode {
  readonly index: number;
  /** The wallets table. */
  readonly table: string;
  readonly pool: mariadb.Pool;
  readonly store: MysqlHistoryStore;
  readonly wallets: ReturnType<typeof walletService>;
  /** What the node holds for a wallet, read after every write set it has received is applied. */
  read(id: string): Promise<{ row: { balance: number; version: number } | undefined; history: HistoryRow[] }>;
}

export interface HistoryRow {
  readonly version: number;
  readonly txId: string | null;
  readonly balance: number;
}

/**
 * The decorated service a user writes: `deposit` adds to the balance inside the method, so a
 * retried call that ran on a changed entity would add twice; the UPDATE is guarded by version.
 * `runs` counts the attempts (the method's runs), `pause` holds a run after its entity write.
 */
export function walletService(accounts: string, store: MysqlHistoryStore) {
  const state = { runs: 0, pause: undefined as (() => Promise<void>) | undefined };

  class WalletService {
    constructor(readonly history: MysqlHistoryStore) {}

    @Versioned({ op: 'create' })
    @HistoryTracked('history', { entityType: 'Wallet', op: 'create' })
    async open(wallet: Wallet, connection: mariadb.PoolConnection): Promise<unknown> {
      return connection.query(`INSERT INTO ${accounts} (id, balance, version, ts_ms) VALUES (?, ?, ?, ?)`, [
        wallet.id,
        wallet.balance,
        wallet.version,
        wallet.timestamp?.getTime(),
      ]);
    }

    @Versioned({ op: 'update' })
    @HistoryTracked('history', { entityType: 'Wallet', op: 'update' })
    async deposit(wallet: Wallet, connection: mariadb.PoolConnection, amount: number): Promise<unknown> {
      state.runs++;
      wallet.balance += amount;
      const result = await connection.query(
        `UPDATE ${accounts} SET balance = ?, version = ?, ts_ms = ? WHERE id = ? AND version = ?`,
        [wallet.balance, wallet.version, wallet.timestamp?.getTime(), wallet.id, expectedVersion(wallet)],
      );
      const pause = state.pause;
      if (pause !== undefined) {
        state.pause = undefined;
        await pause();
      }
      return result;
    }

    /** The same change without the version guard: only the history key stands between racing writers. */
    @Versioned({ op: 'update' })
    @HistoryTracked('history', { entityType: 'Wallet', op: 'update' })
    async depositUnguarded(wallet: Wallet, connection: mariadb.PoolConnection, amount: number): Promise<unknown> {
      state.runs++;
      wallet.balance += amount;
      return connection.query(`UPDATE ${accounts} SET balance = ?, version = ?, ts_ms = ? WHERE id = ?`, [
        wallet.balance,
        wallet.version,
        wallet.timestamp?.getTime(),
        wallet.id,
      ]);
    }
  }

  return { service: new WalletService(store), state };
}

/** Opens every node of GALERA_URLS, with tables of this run created through the first (DDL replicates). */
export async function openGalera(
  urls: readonly string[],
  /** Use these existing tables (another process's) instead of creating new ones; `close` leaves them. */
  tables?: { readonly accounts: string; readonly history: string },
): Promise<{ nodes: GaleraNode[]; tables: { accounts: string; history: string }; close(): Promise<void> }> {
  const accounts = tables?.accounts ?? uniqueName('gal_wallets');
  const history = tables?.history ?? uniqueName('gal_history');
  const pools = urls.map((url) =>
    mariadb.createPool({ ...settings(url), connectionLimit: 8, acquireTimeout: 20_000, connectTimeout: 5_000 }),
  );
  const first = pools[0] as mariadb.Pool;
  if (tables === undefined) {
    await first.query(
      `CREATE TABLE ${accounts} (id VARCHAR(64) PRIMARY KEY, balance INT NOT NULL, version INT NOT NULL, ts_ms BIGINT NOT NULL) ENGINE=InnoDB`,
    );
    await new MysqlHistoryStore(first as unknown as MysqlQueryable, { table: history }).ensureSchema();
  }
  const nodes = pools.map((pool, index): GaleraNode => {
    const store = new MysqlHistoryStore(pool as unknown as MysqlQueryable, { table: history });
    return {
      index,
      table: accounts,
      pool,
      store,
      wallets: walletService(accounts, store),
      async read(id) {
        const connection = await pool.getConnection();
        try {
          // Reads wait until the node has applied every write set it received before them.
          await connection.query('SET SESSION wsrep_sync_wait = 1');
          const rows = (await connection.query(`SELECT balance, version FROM ${accounts} WHERE id = ?`, [id])) as {
            balance: number;
            version: number;
          }[];
          const entries = (await connection.query(
            `SELECT version, tx_id AS txId, snapshot FROM ${history} WHERE entity_type = 'Wallet' AND entity_id = ? ORDER BY version`,
            [id],
          )) as { version: number; txId: string | null; snapshot: string | Record<string, unknown> }[];
          const row = rows[0];
          return {
            row: row === undefined ? undefined : { balance: Number(row.balance), version: Number(row.version) },
            history: entries.map((e) => {
              const snapshot = typeof e.snapshot === 'string' ? JSON.parse(e.snapshot) : e.snapshot;
              return { version: Number(e.version), txId: e.txId, balance: Number(snapshot.balance) };
            }),
          };
        } finally {
          await connection.release();
        }
      },
    };
  });
  return {
    nodes,
    tables: { accounts, history },
    async close() {
      if (tables !== undefined) {
        await Promise.all(pools.map((pool) => pool.end().catch(() => {})));
        return;
      }
      await first.query(`DROP TABLE IF EXISTS ${accounts}, ${history}, ${history}_heads`).catch(() => {});
      await Promise.all(pools.map((pool) => pool.end().catch(() => {})));
    },
  };
}
