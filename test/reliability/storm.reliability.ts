import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryExhaustedError, retryOnConflict, VersionConflictError } from '../../src/index.js';
import { useFigures } from './support/figures.js';
import { entityViolations } from './support/invariants.js';
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

const figures = useFigures('storm');
const WRITERS = 32;
const ENTITIES = 5;
/** Updates each writer tries (first storm) or must get in (with retryOnConflict). */
const UPDATES = Number(process.env.RELIABILITY_STORM_UPDATES ?? 10);

const DATABASES = [
  { name: 'postgres', url: POSTGRES_URL, open: () => openPostgres({ max: WRITERS }) as Promise<Target> },
  { name: 'mariadb', url: MARIADB_URL, open: () => openMariadb({ max: WRITERS }) as Promise<Target> },
] as const;

async function load(target: Target, id: string): Promise<Account> {
  const row = await target.readRow(id);
  if (row === undefined) throw new Error(`account ${id} is missing`);
  return { id, balance: row.balance, note: row.note, version: row.version, timestamp: new Date(row.timestampMs) };
}

for (const db of DATABASES) {
  describe.runIf(runsHere(db.url === undefined ? `${db.name} URL is not set` : undefined))(
    `${db.name}: ${WRITERS} concurrent writers on ${ENTITIES} entities`,
    () => {
      let target: Target;

      beforeAll(async () => {
        target = await db.open();
      });
      afterAll(() => target?.close());

      async function seed(services: ReturnType<typeof accountServices<unknown>>): Promise<string[]> {
        const ids = Array.from({ length: ENTITIES }, () => uniqueName('storm'));
        const session = await target.session();
        try {
          for (const id of ids) await services.accounts.save({ id, balance: 0, note: 'start' }, session);
        } finally {
          await target.release(session);
        }
        return ids;
      }

      /** Runs `work` on each of the writers at once, each with its own pooled connection. */
      async function storm(work: (session: unknown, writer: number) => Promise<void>): Promise<void> {
        const sessions = await Promise.all(Array.from({ length: WRITERS }, () => target.session()));
        try {
          await Promise.all(sessions.map((session, writer) => work(session, writer)));
        } finally {
          await Promise.all(sessions.map((session) => target.release(session)));
        }
      }

      async function expectConsistent(ids: string[], committed: Map<string, number>): Promise<void> {
        for (const id of ids) {
          const row = await target.readRow(id);
          const problems = await entityViolations(target, 'Account', id);
          figures.add('invariants', 'checks', db.name);
          figures.add('invariants', 'invariant violations', db.name, problems.length);
          expect(problems).toEqual([]);
          // Final version = the create + one per committed update; every committed +1 is in the balance.
          expect(row?.version).toBe(1 + (committed.get(id) ?? 0));
          expect(row?.balance).toBe(committed.get(id) ?? 0);
        }
      }

      for (const guarded of [true, false]) {
        const how = guarded
          ? 'guarded updates'
          : 'updates without a version guard (only the history key catches the race)';
        it(`reports every lost race as a VersionConflictError and loses no committed update, with ${how}`, async () => {
          const services = accountServices(target, { guarded });
          const ids = await seed(services);
          const committed = new Map<string, number>();
          let conflicts = 0;
          await storm(async (session, writer) => {
            for (let i = 0; i < UPDATES; i++) {
              const id = ids[(writer + i) % ENTITIES] as string;
              const account = await load(target, id);
              account.balance += 1;
              try {
                await services.accounts.update(account, session);
                committed.set(id, (committed.get(id) ?? 0) + 1);
              } catch (error) {
                expect(error).toBeInstanceOf(VersionConflictError);
                conflicts++;
              }
            }
          });
          figures.add('storm', `conflicts (${guarded ? 'guarded' : 'unguarded'}, no retry)`, db.name, conflicts);
          figures.add(
            'storm',
            'updates committed',
            db.name,
            [...committed.values()].reduce((a, b) => a + b, 0),
          );
          expect(conflicts).toBeGreaterThan(0);
          await expectConsistent(ids, committed);
        });
      }

      it('gets every intended change in with retryOnConflict, re-reading and re-applying each time', async () => {
        const services = accountServices(target);
        const ids = await seed(services);
        const committed = new Map<string, number>();
        let conflicts = 0;
        await storm(async (session, writer) => {
          for (let i = 0; i < UPDATES; i++) {
            const id = ids[(writer + i) % ENTITIES] as string;
            await retryOnConflict(
              async () => {
                const account = await load(target, id);
                account.balance += 1;
                await services.accounts.update(account, session);
              },
              { attempts: 200, baseDelayMs: 2, maxDelayMs: 40, onConflict: () => conflicts++ },
            );
            committed.set(id, (committed.get(id) ?? 0) + 1);
          }
        });
        figures.add('storm', 'conflicts (retried by retryOnConflict)', db.name, conflicts);
        figures.add('storm', 'intended changes applied with retryOnConflict', db.name, WRITERS * UPDATES);
        expect([...committed.values()].reduce((a, b) => a + b, 0)).toBe(WRITERS * UPDATES);
        await expectConsistent(ids, committed);
      });

      it('gives up with a RetryExhaustedError carrying the last conflict when the attempts run out', async () => {
        const services = accountServices(target);
        const [id] = await seed(services);
        const session = await target.session();
        try {
          const stale = await load(target, id as string);
          await services.accounts.update(await load(target, id as string), session);
          let attempts = 0;
          const error = await retryOnConflict(
            async () => {
              attempts++;
              await services.accounts.update({ ...stale }, session);
            },
            { attempts: 3, baseDelayMs: 1 },
          ).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(RetryExhaustedError);
          expect((error as RetryExhaustedError).cause).toBeInstanceOf(VersionConflictError);
          expect(attempts).toBe(3);
          figures.add('storm', 'conflicts (retries exhausted on purpose)', db.name, 3);
        } finally {
          await target.release(session);
        }
      });
    },
  );
}
