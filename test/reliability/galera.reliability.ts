import type * as mariadb from 'mariadb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionLostError,
  TransactionRetriesExhaustedError,
  TransactionStateError,
  VersionConflictError,
} from '../../src/index.js';
import { useFigures } from './support/figures.js';
import { GALERA_URLS, type GaleraNode, galera, nodeNumber, openGalera, type Wallet } from './support/galera.js';
import { PROCESS_CALLS, PROCESSES, totals, useAppProcesses } from './support/processes.js';
import { runsHere, uniqueName } from './support/targets.js';

const figures = useFigures('galera');
const processes = useAppProcesses();
const CALLS = Number(process.env.RELIABILITY_GALERA_CALLS ?? 40);
const ROUNDS = Number(process.env.RELIABILITY_GALERA_ROUNDS ?? 10);
const DB = 'galera';

/** A lost race as the caller may see it: a conflict, or a retried certification failure that ran out of attempts. */
function isLostRace(error: unknown): boolean {
  if (error instanceof VersionConflictError) return true;
  return (
    error instanceof TransactionRetriesExhaustedError &&
    error.cause instanceof TransactionStateError &&
    error.cause.code === 'COMMIT_CONFLICT'
  );
}

async function certificationFailures(nodes: readonly GaleraNode[]): Promise<number> {
  let sum = 0;
  for (const node of nodes) {
    const rows = (await node.pool.query(
      "SHOW STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')",
    )) as {
      Value: string;
    }[];
    for (const row of rows) sum += Number(row.Value);
  }
  return sum;
}

describe.runIf(
  runsHere(
    GALERA_URLS === undefined || GALERA_URLS.length < 3
      ? 'GALERA_URLS is not set to the 3 nodes of the test cluster (scripts/galera.sh start; scripts/galera.sh urls)'
      : undefined,
  ),
)('galera: a 3-node multi-primary cluster', () => {
  let nodes: GaleraNode[];
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ nodes, close } = await openGalera(GALERA_URLS ?? []));
    const status = await galera('status');
    figures.note('Galera cluster', status.trim().split('\n').join('; '));
  });
  /** Whether the node the kill test killed runs again (else the suite starts it, for the tests after it). */
  let restarted = true;
  afterAll(async () => {
    if (!restarted) await galera('start-node', '2');
    await close?.();
  });

  const at = (index: number): GaleraNode => nodes[index] as GaleraNode;

  async function openWallet(node: GaleraNode, balance = 100): Promise<Wallet> {
    const wallet: Wallet = { id: uniqueName('w'), balance };
    const connection = await node.pool.getConnection();
    try {
      await node.wallets.service.open(wallet, connection);
    } finally {
      await connection.release();
    }
    return wallet;
  }

  /** Reads the wallet on the writer's own connection, without waiting for replication: stale reads make races. */
  async function load(connection: mariadb.PoolConnection, node: GaleraNode, id: string): Promise<Wallet> {
    const rows = (await connection.query(`SELECT balance, version FROM ${node.table} WHERE id = ?`, [id])) as {
      balance: number;
      version: number;
    }[];
    return { id, balance: Number(rows[0]?.balance), version: Number(rows[0]?.version) };
  }

  /** Every node holds the same wallet: version 1 + acknowledged updates, their sum, and one history of them. */
  async function expectEveryNode(wallet: Wallet, acknowledged: number, amount = 1): Promise<void> {
    const seen: string[] = [];
    for (const node of nodes) {
      const { row, history } = await node.read(wallet.id);
      figures.add('invariants', 'checks', DB);
      const problems: string[] = [];
      if (row?.version !== 1 + acknowledged)
        problems.push(`node ${node.index + 1}: version ${row?.version}, expected ${1 + acknowledged}`);
      if (row?.balance !== wallet.balance + amount * acknowledged)
        problems.push(`node ${node.index + 1}: balance ${row?.balance}`);
      if (history.map((h) => h.version).join() !== Array.from({ length: 1 + acknowledged }, (_, i) => i + 1).join())
        problems.push(`node ${node.index + 1}: history versions ${history.map((h) => h.version).join()}`);
      if (history.at(-1)?.balance !== row?.balance)
        problems.push(`node ${node.index + 1}: latest snapshot differs from the row`);
      figures.add('invariants', 'invariant violations', DB, problems.length);
      expect(problems).toEqual([]);
      seen.push(JSON.stringify(history));
    }
    expect(new Set(seen).size, 'every node holds the same history, txIds included').toBe(1);
  }

  it('writers on different nodes race on the same wallets: each lost race is a VersionConflictError or a retry with the effect of one call, and every node ends with exactly the acknowledged updates', async () => {
    const wallets = [await openWallet(at(0)), await openWallet(at(0)), await openWallet(at(0))];
    const acknowledged = new Map(wallets.map((w) => [w.id, 0]));
    const runsBefore = nodes.reduce((sum, node) => sum + node.wallets.state.runs, 0);
    const certBefore = await certificationFailures(nodes);
    const unexpected: unknown[] = [];
    let calls = 0;
    let lost = 0;
    const writer = async (node: GaleraNode, seed: number): Promise<void> => {
      for (let i = 0; i < CALLS; i++) {
        const target = wallets[(seed + i * 7) % wallets.length] as Wallet;
        const connection = await node.pool.getConnection();
        try {
          const wallet = await load(connection, node, target.id);
          const passed = { ...wallet };
          calls++;
          try {
            await node.wallets.service.deposit(wallet, connection, 1);
            acknowledged.set(wallet.id, (acknowledged.get(wallet.id) ?? 0) + 1);
            expect(wallet.version).toBe((passed.version ?? 0) + 1);
          } catch (error) {
            if (!isLostRace(error)) {
              unexpected.push(error);
              continue;
            }
            lost++;
            // The entity's version and timestamp are as they were passed.
            expect([wallet.version, wallet.timestamp]).toEqual([passed.version, passed.timestamp]);
          }
        } finally {
          await connection.release();
        }
      }
    };
    await Promise.all(nodes.flatMap((node, n) => [writer(node, n * 2), writer(node, n * 2 + 1)]));
    expect(unexpected).toEqual([]);
    const retries = nodes.reduce((sum, node) => sum + node.wallets.state.runs, 0) - runsBefore - calls;
    const certified = (await certificationFailures(nodes)) - certBefore;
    for (const wallet of wallets) await expectEveryNode(wallet, acknowledged.get(wallet.id) ?? 0);
    figures.add('clusters', 'calls', DB, calls);
    figures.add('clusters', 'conflicts (lost races reported)', DB, lost);
    figures.add('clusters', 'retries (certification failures and BF aborts run again)', DB, retries);
    figures.add('clusters', 'certification failures and BF aborts (server counters)', DB, certified);
    expect(lost + retries, 'the writers really raced').toBeGreaterThan(0);
  });

  it('a call that loses to another node after its own write is retried from the entity as passed and reports VersionConflictError', async () => {
    for (let round = 0; round < Math.max(2, ROUNDS / 2); round++) {
      const wallet = await openWallet(at(0));
      await expectEveryNode(wallet, 0);
      const loser = at(1);
      const winner = at(2);
      const runsBefore = loser.wallets.state.runs;
      const mine: Wallet = { ...wallet, version: 1 };
      const theirs: Wallet = { ...wallet, version: 1 };
      // The loser has written its row and holds it locally; the winner commits the same row on another node.
      loser.wallets.state.pause = async () => {
        const connection = await winner.pool.getConnection();
        try {
          await winner.wallets.service.deposit(theirs, connection, 5);
        } finally {
          await connection.release();
        }
      };
      const connection = await loser.pool.getConnection();
      let error: unknown;
      try {
        await loser.wallets.service.deposit(mine, connection, 1);
      } catch (caught) {
        error = caught;
      } finally {
        await connection.release();
      }
      expect(error).toBeInstanceOf(VersionConflictError);
      expect(loser.wallets.state.runs - runsBefore, 'the certification failure was run again once').toBe(2);
      expect([mine.version, mine.timestamp]).toEqual([1, wallet.timestamp]);
      await expectEveryNode(wallet, 1, 5);
      figures.add('clusters', 'calls', DB, 2);
      figures.add('clusters', 'conflicts (lost races reported)', DB);
      figures.add('clusters', 'retries (certification failures and BF aborts run again)', DB);
    }
  });

  it('the history key holds across nodes: of two unguarded writers of one version on two nodes, exactly one commits', async () => {
    const wallet = await openWallet(at(0));
    let version = 1;
    for (let round = 0; round < ROUNDS; round++) {
      await expectEveryNode(wallet, version - 1, 1);
      const attempt = async (node: GaleraNode): Promise<'won' | 'lost'> => {
        const connection = await node.pool.getConnection();
        const copy: Wallet = { ...wallet, balance: wallet.balance + version - 1, version };
        try {
          await node.wallets.service.depositUnguarded(copy, connection, 1);
          return 'won';
        } catch (error) {
          if (!isLostRace(error)) throw error;
          return 'lost';
        } finally {
          await connection.release();
        }
      };
      const results = await Promise.all([attempt(at(round % 3)), attempt(at((round + 1) % 3))]);
      expect(
        results.filter((r) => r === 'won'),
        'one version, one writer',
      ).toHaveLength(1);
      version++;
      figures.add('clusters', 'calls', DB, 2);
      figures.add('clusters', 'conflicts (lost races reported)', DB);
    }
    await expectEveryNode(wallet, version - 1, 1);
  });

  it('many app processes, each with its own pool on its own node, race on shared wallets: every node ends with the acknowledged updates', async () => {
    const urls = GALERA_URLS ?? [];
    const { nodes, tables, close } = await openGalera(urls);
    const DB = 'galera (processes)';
    try {
      const first = nodes[0];
      if (first === undefined) throw new Error('no Galera node');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const wallet: Wallet = { id: uniqueName('w'), balance: 100 };
        const connection = await first.pool.getConnection();
        try {
          await first.wallets.service.open(wallet, connection);
        } finally {
          await connection.release();
        }
        ids.push(wallet.id);
      }
      const reports = await processes((index) => [
        'galera',
        tables.accounts,
        tables.history,
        ids.join(','),
        String(PROCESS_CALLS),
        urls[index % urls.length] as string,
      ]);
      expect(reports.flatMap((r) => r.errors)).toEqual([]);
      const sums = totals(reports);
      for (const id of ids) {
        const seen = new Set<string>();
        for (const node of nodes) {
          const { row, history } = await node.read(id);
          const committed = sums.get(id) ?? 0;
          const problems: string[] = [];
          if (row?.version !== 1 + committed)
            problems.push(`${id}: version ${row?.version}, expected ${1 + committed}`);
          if (row?.balance !== 100 + committed) problems.push(`${id}: balance ${row?.balance}`);
          if (history.map((h) => h.version).join() !== Array.from({ length: 1 + committed }, (_, i) => i + 1).join())
            problems.push(`${id}: history ${history.map((h) => h.version).join()}`);
          figures.add('invariants', 'checks', DB);
          figures.add('invariants', 'invariant violations', DB, problems.length);
          expect(problems).toEqual([]);
          seen.add(JSON.stringify(history));
        }
        expect(seen.size, 'every node holds the same history').toBe(1);
      }
      const lost = reports.reduce((s, r) => s + r.lost, 0);
      const retries = reports.reduce((s, r) => s + r.attempts - r.calls, 0);
      figures.add('clusters', 'app processes', DB, PROCESSES);
      figures.add('clusters', 'calls', DB, PROCESSES * PROCESS_CALLS);
      figures.add('clusters', 'conflicts (lost races reported)', DB, lost);
      figures.add('clusters', 'retries (certification failures and BF aborts run again)', DB, retries);
      expect(lost + retries, 'the processes really raced').toBeGreaterThan(0);
    } finally {
      await close();
    }
  });

  it('a node killed mid-transaction loses nothing acknowledged and keeps nothing half-written, and catches up when it rejoins', async () => {
    const victim = at(1);
    restarted = false;
    const streamed = await openWallet(at(0));
    const halfWritten = await openWallet(at(0));
    let acknowledged = 0;
    let stop = false;
    // A stream of acknowledged calls through the nodes that stay up.
    const stream = (async () => {
      let wallet: Wallet = { ...streamed, version: 1 };
      for (let i = 0; !stop || i < 10; i++) {
        const node = at(i % 2 === 0 ? 0 : 2);
        const connection = await node.pool.getConnection();
        try {
          const next = { ...wallet, balance: streamed.balance + acknowledged };
          await node.wallets.service.deposit(next, connection, 1);
          acknowledged++;
          wallet = next;
        } catch (error) {
          if (!isLostRace(error)) throw error;
          // Stale read on the other node: read it again, after replication.
          const { row } = await node.read(streamed.id);
          wallet = { ...streamed, balance: row?.balance ?? 0, version: row?.version ?? 1 };
        } finally {
          await connection.release();
        }
      }
    })();
    const doomed: Wallet = { ...halfWritten, version: 1 };
    victim.wallets.state.pause = () => galera('kill', nodeNumber(victim.index)).then(() => undefined);
    const connection = await victim.pool.getConnection();
    let error: unknown;
    try {
      await victim.wallets.service.deposit(doomed, connection, 50);
    } catch (caught) {
      error = caught;
    } finally {
      stop = true;
      await stream;
    }
    try {
      await connection.destroy();
    } catch {
      // The node is gone with its connection.
    }
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect((error as ConnectionLostError).outcome).toBe('rolled-back');
    expect([doomed.version, doomed.timestamp]).toEqual([1, halfWritten.timestamp]);
    figures.add('clusters', 'node kills survived', DB);
    const survivors = nodes.filter((node) => node !== victim);
    const check = nodes;
    nodes = survivors;
    try {
      await expectEveryNode(streamed, acknowledged);
      await expectEveryNode(halfWritten, 0);
    } finally {
      nodes = check;
    }
    await galera('start-node', nodeNumber(victim.index));
    restarted = true;
    figures.add('clusters', 'node rejoins caught up', DB);
    await expectEveryNode(streamed, acknowledged);
    await expectEveryNode(halfWritten, 0);
    figures.add('clusters', 'calls', DB, acknowledged + 1);
  });
});
