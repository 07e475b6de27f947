/**
 * One of the app processes of processes.reliability.ts: the same decorated service, its own pool,
 * `calls` deposits of 1 on the shared entities, each read on its own connection first. Prints one
 * JSON line: the acknowledged deposits per entity, the lost races, the attempts and any other error.
 *   node processes-child.mjs <postgres|galera> <accounts table> <history table> <id,id,…> <calls> [galera node URL]
 */
import { TransactionRetriesExhaustedError, TransactionStateError, VersionConflictError } from '../../src/index.js';
import { openGalera } from './support/galera.js';
import { accountServices } from './support/services.js';
import { type Account, openPostgres, type Target } from './support/targets.js';

const [kind, accounts, history, idList, callList, url] = process.argv.slice(2);
if (accounts === undefined || history === undefined || idList === undefined || callList === undefined) {
  throw new Error('usage: processes-child <postgres|galera> <accounts> <history> <ids> <calls> [url]');
}
const ids = idList.split(',');
const calls = Number(callList);
const acknowledged: Record<string, number> = {};
let lost = 0;
let attempts = 0;
const errors: string[] = [];

function lostRace(error: unknown): boolean {
  if (error instanceof VersionConflictError) return true;
  return (
    error instanceof TransactionRetriesExhaustedError &&
    error.cause instanceof TransactionStateError &&
    error.cause.code === 'COMMIT_CONFLICT'
  );
}

if (kind === 'postgres') {
  const target = (await openPostgres({ tables: { accounts, history }, max: 2 })) as Target;
  const services = accountServices(target);
  for (let i = 0; i < calls; i++) {
    const id = ids[Math.floor(Math.random() * ids.length)] as string;
    const session = await target.session();
    try {
      const row = await target.readRow(id);
      if (row === undefined) throw new Error(`account ${id} is missing`);
      const account: Account = {
        id,
        balance: row.balance + 1,
        note: `process ${process.pid}`,
        version: row.version,
        timestamp: new Date(row.timestampMs),
      };
      attempts++;
      await services.accounts.update(account, session);
      acknowledged[id] = (acknowledged[id] ?? 0) + 1;
    } catch (error) {
      if (lostRace(error)) lost++;
      else errors.push(String(error));
    } finally {
      await target.release(session);
    }
  }
  await target.close();
} else {
  const { nodes, close } = await openGalera([url as string], { accounts, history });
  const node = nodes[0];
  if (node === undefined) throw new Error('no Galera node');
  for (let i = 0; i < calls; i++) {
    const id = ids[Math.floor(Math.random() * ids.length)] as string;
    const connection = await node.pool.getConnection();
    try {
      const rows = (await connection.query(`SELECT balance, version FROM ${node.table} WHERE id = ?`, [id])) as {
        balance: number;
        version: number;
      }[];
      const wallet = { id, balance: Number(rows[0]?.balance), version: Number(rows[0]?.version) };
      await node.wallets.service.deposit(wallet, connection, 1);
      acknowledged[id] = (acknowledged[id] ?? 0) + 1;
    } catch (error) {
      if (lostRace(error)) lost++;
      else errors.push(String(error));
    } finally {
      await connection.release();
    }
  }
  attempts = node.wallets.state.runs;
  await close();
}
process.stdout.write(`${JSON.stringify({ acknowledged, lost, attempts, calls, errors })}\n`);
