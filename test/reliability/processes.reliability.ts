import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useFigures } from './support/figures.js';
import { entityViolations } from './support/invariants.js';
import { PROCESS_CALLS as CALLS, PROCESSES, totals, useAppProcesses } from './support/processes.js';
import { accountServices } from './support/services.js';
import { type Account, openPostgres, POSTGRES_URL, runsHere, type Target, uniqueName } from './support/targets.js';

// The Galera counterpart runs in galera.reliability.ts, whose tests kill a node: one file, one at a time.
const figures = useFigures('processes');
const ENTITIES = 3;
const processes = useAppProcesses();

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
