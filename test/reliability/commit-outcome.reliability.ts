import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommitOutcome, ConnectionLostError, commitOutcome } from '../../src/index.js';
import { useFigures } from './support/figures.js';
import { entityState, entityViolations } from './support/invariants.js';
import { type CutDecision, CuttingProxy } from './support/proxy.js';
import { accountServices } from './support/services.js';
import {
  type Account,
  MARIADB_URL,
  openMariadb,
  openPostgres,
  POSTGRES_URL,
  runsHere,
  type Target,
  uniqueName,
} from './support/targets.js';

const figures = useFigures('commit-outcome');
const ROUNDS = Number(process.env.RELIABILITY_OUTCOME_ROUNDS ?? 4);
const OPS = ['create', 'update', 'delete'] as const;
type Op = (typeof OPS)[number];

/** Where the proxy cuts, relative to the COMMIT the client sends, and what the database then did. */
const CUTS: readonly { kind: string; decision: CutDecision; status: CommitOutcome['status'] }[] = [
  { kind: 'before the server got COMMIT', decision: 'cut-before', status: 'not-committed' },
  { kind: 'after COMMIT reached the server', decision: 'cut-after', status: 'committed' },
];

const PROXIED = [
  { name: 'postgres', url: POSTGRES_URL, port: 5432, open: (port: number) => openPostgres({ port }) },
  { name: 'mariadb', url: MARIADB_URL, port: 3306, open: (port: number) => openMariadb({ port }) },
] as const;

for (const db of PROXIED) {
  describe.runIf(runsHere(db.url === undefined ? `${db.name} URL is not set` : undefined))(
    `${db.name}: commitOutcome after a connection cut while COMMIT was in flight`,
    () => {
      let proxy: CuttingProxy;
      let target: Target;
      let services: ReturnType<typeof accountServices<unknown>>;

      beforeAll(async () => {
        proxy = new CuttingProxy('127.0.0.1', Number(new URL(db.url ?? '').port || db.port));
        target = (await db.open(await proxy.listen())) as Target;
        services = accountServices(target);
      });
      afterAll(async () => {
        await target?.close();
        await proxy?.close();
      });

      async function seeded(op: Op): Promise<Account> {
        const account: Account = { id: uniqueName('acc'), balance: 100, note: 'seeded' };
        if (op === 'create') return account;
        const session = await target.session();
        try {
          await services.accounts.save(account, session);
        } finally {
          await target.release(session);
        }
        return account;
      }

      function run(op: Op, account: Account, session: unknown): Promise<unknown> {
        if (op === 'create') return services.accounts.save(account, session);
        if (op === 'update') return services.accounts.update(account, session);
        return services.accounts.remove(account, session);
      }

      for (const cut of CUTS) {
        it(`says ${cut.status} when the proxy cuts ${cut.kind}, as the tables then show, and the answer is final`, async () => {
          for (let round = 0; round < ROUNDS; round++) {
            for (const op of OPS) {
              const account = await seeded(op);
              if (op === 'update') account.balance += 7;
              const versionBefore = account.version;
              const before = await entityState(target, 'Account', account.id);
              const session = await target.session();
              const connectionId = target.connectionId(session);
              proxy.cutWhen((chunk) => (chunk.includes('COMMIT') ? cut.decision : 'forward'));
              let error: unknown;
              try {
                await run(op, account, session);
              } catch (caught) {
                error = caught;
              } finally {
                proxy.cutWhen(() => 'forward');
                await target.release(session, true);
              }
              expect(error).toBeInstanceOf(ConnectionLostError);
              const lost = error as ConnectionLostError;
              expect(lost.outcome).toBe('unknown');
              const version = (versionBefore ?? 0) + 1;
              expect(lost.inFlight).toMatchObject({ entityType: 'Account', entityId: account.id, version });
              expect(typeof lost.inFlight?.txId).toBe('string');
              // Asked at once, while the server may still hold the broken session's transaction open.
              const outcome = await commitOutcome(target.store, lost);
              figures.add('clusters', `outcomes resolved: ${outcome.status}`, target.name);
              expect(outcome.status, outcome.reason).toBe(cut.status);
              // What the tables hold, once the server has surely finished with the session, agrees.
              await target.awaitClosed(connectionId);
              const after = await entityState(target, 'Account', account.id);
              if (cut.status === 'committed') {
                expect(after).not.toBe(before);
                expect(outcome.entry?.txId).toBe(lost.inFlight?.txId);
              } else {
                expect(after).toBe(before);
                // Not committed means: running the call again has the effect of exactly one call.
                const retry = await target.session();
                try {
                  await run(op, account, retry);
                } finally {
                  await target.release(retry);
                }
                const history = (await target.readEntity('Account', account.id)).history;
                expect(history.map((h) => h.version)).toEqual(Array.from({ length: version }, (_, i) => i + 1));
                figures.add('clusters', 'calls run again after not-committed', target.name);
              }
              expect(await commitOutcome(target.store, lost)).toMatchObject({ status: cut.status });
              const violations = await entityViolations(target, 'Account', account.id);
              figures.add('invariants', 'checks', target.name);
              figures.add('invariants', 'invariant violations', target.name, violations.length);
              expect(violations).toEqual([]);
            }
          }
        });
      }

      it('says not-committed without a look at the database when the connection broke before COMMIT', async () => {
        const account = await seeded('update');
        const session = await target.session();
        proxy.cutWhen((chunk) => (chunk.includes('UPDATE') ? 'cut-before' : 'forward'));
        const error = await services.accounts.update(account, session).catch((caught: unknown) => caught);
        proxy.cutWhen(() => 'forward');
        await target.release(session, true);
        expect(error).toBeInstanceOf(ConnectionLostError);
        expect((error as ConnectionLostError).outcome).toBe('rolled-back');
        expect((error as ConnectionLostError).inFlight).toBeUndefined();
        expect(await commitOutcome(target.store, error as ConnectionLostError)).toMatchObject({
          status: 'not-committed',
        });
      });
    },
  );
}
