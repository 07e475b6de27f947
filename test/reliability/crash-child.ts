/**
 * The process the crash test kills: it updates the given accounts in a loop, one decorated call
 * after another on one session, until it receives SIGKILL. It prints `ready` after its first
 * committed update. crash.reliability.ts bundles it with esbuild and runs it as
 *   node crash-child.mjs <postgres|sqlite> <accounts table> <history table> <sqlite path> <id,id,…>
 */
import { VersionConflictError } from '../../src/index.js';
import { accountServices } from './support/services.js';
import { type Account, openPostgres, openSqlite, type Target } from './support/targets.js';

const [kind, accountsTable, historyTable, path, idList] = process.argv.slice(2);
if (accountsTable === undefined || historyTable === undefined || idList === undefined) {
  throw new Error('usage: crash-child <postgres|sqlite> <accounts> <history> <sqlite path> <ids>');
}
const tables = { accounts: accountsTable, history: historyTable };
const target = (
  kind === 'postgres' ? await openPostgres({ tables, max: 1 }) : await openSqlite(path, tables)
) as Target;
const { accounts } = accountServices(target);
const ids = idList.split(',');
const session = await target.session();
let commits = 0;
for (;;) {
  const id = ids[Math.floor(Math.random() * ids.length)] as string;
  const row = await target.readRow(id);
  if (row === undefined) throw new Error(`account ${id} is missing`);
  const account: Account = {
    id,
    balance: row.balance + 1,
    note: `crash-${process.pid}-${commits}`,
    version: row.version,
    timestamp: new Date(row.timestampMs),
  };
  try {
    await accounts.update(account, session);
  } catch (error) {
    if (!(error instanceof VersionConflictError)) throw error;
  }
  commits++;
  if (commits === 1) process.stdout.write('ready\n');
}
