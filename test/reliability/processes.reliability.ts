import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useFigures } from './support/figures.js';
import { GALERA_URLS, openGalera, type Wallet } from './support/galera.js';
import { entityViolations } from './support/invariants.js';
import { accountServices } from './support/services.js';
import { type Account, openPostgres, POSTGRES_URL, runsHere, type Target, uniqueName } from './support/targets.js';

const figures = useFigures('processes');
const PROCESSES = Number(process.env.RELIABILITY_PROCESSES ?? 4);
const CALLS = Number(process.env.RELIABILITY_PROCESS_CALLS ?? 30);
const ENTITIES = 3;
const SOURCE = fileURLToPath(new URL('./processes-child.ts', import.meta.url));
const CHILD = join(process.cwd(), '.tmp', 'reliability', `processes-child-${process.pid}.mjs`);
const run = promisify(execFile);

interface ChildReport {
  acknowledged: Record<string, number>;
  lost: number;
  attempts: number;
  calls: number;
  errors: string[];
}

beforeAll(async () => {
  await build({
    entryPoints: [SOURCE],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: CHILD,
    packages: 'external',
    tsconfig: 'tsconfig.json',
    logLevel: 'error',
  });
});
afterAll(() => rmSync(CHILD, { force: true }));

/** Runs the app processes at once and sums what they report. */
async function processes(argsOf: (index: number) => string[]): Promise<ChildReport[]> {
  return Promise.all(
    Array.from({ length: PROCESSES }, async (_, index) => {
      const { stdout } = await run(process.execPath, [CHILD, ...argsOf(index)], {
        timeout: 120_000,
        env: process.env,
      });
      return JSON.parse(stdout.trim().split('\n').at(-1) as string) as ChildReport;
    }),
  );
}

function totals(reports: readonly ChildReport[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const report of reports) {
    for (const [id, n] of Object.entries(report.acknowledged)) sums.set(id, (sums.get(id) ?? 0) + n);
  }
  return sums;
}

describe.runIf(runsHere(POSTGRES_URL === undefined ? 'DATABASE_URL is not set' : undefined))(
  'postgres: many app processes, each with its own pool, race on shared entities',
  () => {
    let target: Target;
    beforeAll(async () => {
      target = (await openPostgres()) as Target;
    });
    afterAll(() => target?.close());

    it('every lost race is a VersionConflictError and every entity ends at 1 + the acknowledged updates, with its history', async () => {
      const { accounts } = accountServices(target);
      const ids: string[] = [];
      for (let i = 0; i < ENTITIES; i++) {
        const account: Account = { id: uniqueName('acc'), balance: 100, note: 'shared' };
        const session = await target.session();
        try {
          await accounts.save(account, session);
        } finally {
          await target.release(session);
        }
        ids.push(account.id);
      }
      const reports = await processes(() => [
        'postgres',
        target.accountsTable,
        target.historyTable,
        ids.join(','),
        String(CALLS),
      ]);
      expect(reports.flatMap((r) => r.errors)).toEqual([]);
      const sums = totals(reports);
      for (const id of ids) {
        const row = await target.readRow(id);
        expect(row?.version).toBe(1 + (sums.get(id) ?? 0));
        expect(row?.balance).toBe(100 + (sums.get(id) ?? 0));
        const violations = await entityViolations(target, 'Account', id);
        figures.add('invariants', 'checks', 'postgres (processes)');
        figures.add('invariants', 'invariant violations', 'postgres (processes)', violations.length);
        expect(violations).toEqual([]);
      }
      const lost = reports.reduce((s, r) => s + r.lost, 0);
      figures.add('clusters', 'app processes', 'postgres (processes)', PROCESSES);
      figures.add('clusters', 'calls', 'postgres (processes)', PROCESSES * CALLS);
      figures.add('clusters', 'conflicts (lost races reported)', 'postgres (processes)', lost);
      expect(lost, 'the processes really raced').toBeGreaterThan(0);
    });
  },
);

describe.runIf(runsHere(GALERA_URLS === undefined || GALERA_URLS.length < 3 ? 'GALERA_URLS is not set' : undefined))(
  'galera: many app processes, each with its own pool on its own node, race on shared entities',
  () => {
    it('every lost race is a VersionConflictError or a retry with the effect of one call, and every node ends with the acknowledged updates', async () => {
      const urls = GALERA_URLS ?? [];
      const { nodes, tables, close } = await openGalera(urls);
      try {
        const first = nodes[0];
        if (first === undefined) throw new Error('no Galera node');
        const ids: string[] = [];
        for (let i = 0; i < ENTITIES; i++) {
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
          String(CALLS),
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
            figures.add('invariants', 'checks', 'galera (processes)');
            figures.add('invariants', 'invariant violations', 'galera (processes)', problems.length);
            expect(problems).toEqual([]);
            seen.add(JSON.stringify(history));
          }
          expect(seen.size, 'every node holds the same history').toBe(1);
        }
        const lost = reports.reduce((s, r) => s + r.lost, 0);
        const retries = reports.reduce((s, r) => s + r.attempts - r.calls, 0);
        figures.add('clusters', 'app processes', 'galera (processes)', PROCESSES);
        figures.add('clusters', 'calls', 'galera (processes)', PROCESSES * CALLS);
        figures.add('clusters', 'conflicts (lost races reported)', 'galera (processes)', lost);
        figures.add(
          'clusters',
          'retries (certification failures and BF aborts run again)',
          'galera (processes)',
          retries,
        );
        expect(lost + retries, 'the processes really raced').toBeGreaterThan(0);
      } finally {
        await close();
      }
    });
  },
);
