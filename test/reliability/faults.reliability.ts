import * as mariadb from 'mariadb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionLostError, EventHistoryError, HistoryWriteError, TransactionStateError } from '../../src/index.js';
import { useFigures } from './support/figures.js';
import { entityState, entityViolations } from './support/invariants.js';
import { type CutDecision, CuttingProxy } from './support/proxy.js';
import { accountServices, type FaultPoint, InjectedFault } from './support/services.js';
import { failingCommit } from './support/session-proxy.js';
import {
  type Account,
  MARIADB_URL,
  openMariadb,
  openPostgres,
  POSTGRES_URL,
  runsHere,
  TARGETS,
  type Target,
  uniqueName,
} from './support/targets.js';

const figures = useFigures('faults');
/** How many times each fault kind is injected per database: once per operation, repeated. */
const ROUNDS = Number(process.env.RELIABILITY_FAULT_ROUNDS ?? 8);
const OPS = ['create', 'update', 'delete'] as const;
type Op = (typeof OPS)[number];

/** How the caller sees a fault: which error (or which class of error) it gets. */
type Expectation = (error: unknown, injected: unknown) => void;

const userErrorUnchanged: Expectation = (error, injected) => expect(error).toBe(injected);
const historyWriteError: Expectation = (error, injected) => {
  expect(error).toBeInstanceOf(HistoryWriteError);
  expect((error as Error).cause).toBe(injected);
};
const connectionLost: Expectation = (error) => {
  expect(error).toBeInstanceOf(ConnectionLostError);
  expect((error as Error).cause).toBeDefined();
};

interface FaultKind {
  readonly kind: string;
  /** Arms the fault for one call; returns the error it injects, when it injects one itself. */
  arm(context: FaultContext): unknown;
  readonly expect: Expectation;
  /** Whether the connection is gone afterwards, so that the session must be discarded. */
  readonly breaksSession: boolean;
}

interface FaultContext {
  readonly target: Target;
  readonly services: ReturnType<typeof accountServices<unknown>>;
  wrap(session: unknown): unknown;
}

function injectAt(point: FaultPoint, expectation: Expectation): FaultKind {
  return {
    kind: `exception ${point}`,
    arm: ({ services }) => {
      const fault = new InjectedFault(point);
      services.faults.arm(point, () => {
        throw fault;
      });
      return fault;
    },
    expect: expectation,
    breaksSession: false,
  };
}

const COMMON_KINDS: readonly FaultKind[] = [
  injectAt('beforeMethod', userErrorUnchanged),
  injectAt('afterEntityWrite', userErrorUnchanged),
  injectAt('historyBeforeInsert', historyWriteError),
  injectAt('historyAfterInsert', historyWriteError),
  {
    kind: 'commit fails',
    arm: () => undefined,
    expect: (error) => {
      expect(error).toBeInstanceOf(TransactionStateError);
      expect((error as TransactionStateError).code).toBe('COMMIT_FAILED');
      expect((error as Error).cause).toBeInstanceOf(InjectedFault);
    },
    breaksSession: false,
  },
  {
    kind: 'connection killed mid-transaction',
    arm: ({ services, target }) => {
      services.faults.arm('afterEntityWrite', (session) => target.kill(session));
      return undefined;
    },
    expect: connectionLost,
    breaksSession: true,
  },
];

async function seed(target: Target, services: FaultContext['services'], op: Op): Promise<Account | undefined> {
  if (op === 'create') return undefined;
  const session = await target.session();
  try {
    const account: Account = { id: uniqueName('acc'), balance: 100, note: 'seeded' };
    await services.accounts.save(account, session);
    return account;
  } finally {
    await target.release(session);
  }
}

/**
 * Injects one fault into one call of `op` and checks the four promises: the tables hold all of
 * the call or none of it, the entity is restored, the error is typed (or the user's own, unchanged),
 * and the pool hands out a usable connection afterwards.
 */
async function injectOnce(
  target: Target,
  services: FaultContext['services'],
  fault: FaultKind,
  op: Op,
  wrap: (session: unknown) => unknown = (s) => s,
  note?: string,
): Promise<'none' | 'all'> {
  const existing = await seed(target, services, op);
  const account: Account = existing ?? { id: uniqueName('acc'), balance: 100, note: note ?? 'new' };
  if (op === 'update') {
    account.balance += 5;
    account.note = note ?? 'changed';
  }
  const before = await entityState(target, 'Account', account.id);
  const versionBefore = account.version;
  const timestampBefore = account.timestamp;
  const session = await target.session();
  const connectionId = target.connectionId(session);
  const injected = fault.arm({ target, services, wrap });
  const call =
    op === 'create' ? services.accounts.save : op === 'update' ? services.accounts.update : services.accounts.remove;
  let error: unknown;
  try {
    await call.call(services.accounts, account, wrap(session) as never);
  } catch (caught) {
    error = caught;
  } finally {
    services.faults.disarm();
    // A connection that survived the fault goes back to the pool only if the call left nothing open on it.
    const idle = fault.breaksSession ? true : await target.sessionIdle(session).catch(() => false);
    // A broken connection is released as any other: the pool must notice and discard it by itself.
    await target.release(session, !idle);
    expect(idle, `${fault.kind} during ${op} left the session usable and outside a transaction`).toBe(true);
  }
  // A cut connection's transaction ends on the server a moment after the client saw the error.
  if (fault.breaksSession) await target.awaitClosed(connectionId);
  figures.add('faults', 'injected', target.name);
  figures.add('faults', fault.kind, target.name);
  expect(error, `${fault.kind} during ${op} on ${target.name} must fail the call`).toBeDefined();
  fault.expect(error, injected);
  if (!(error instanceof InjectedFault)) expect(error).toBeInstanceOf(EventHistoryError);
  expect(account.version).toBe(versionBefore);
  expect(account.timestamp).toBe(timestampBefore);
  const after = await entityState(target, 'Account', account.id);
  const violations = await entityViolations(target, 'Account', account.id);
  figures.add('invariants', 'checks', target.name);
  figures.add('invariants', 'invariant violations', target.name, violations.length);
  expect(violations).toEqual([]);
  expect(await target.poolHealthy(fault.breaksSession)).toBe(true);
  if (after === before) return 'none';
  // Only a connection cut after COMMIT reached the server may leave the whole call committed.
  return 'all';
}

for (const entry of TARGETS) {
  describe.runIf(runsHere(entry.unavailable))(`${entry.name}: faults at every step`, () => {
    let target: Target;
    let services: FaultContext['services'];

    beforeAll(async () => {
      target = await entry.open();
      services = accountServices(target);
    });
    afterAll(() => target?.close());

    for (const fault of COMMON_KINDS) {
      it(`leaves nothing of a call behind and restores the entity when ${fault.kind}`, async () => {
        for (let round = 0; round < ROUNDS; round++) {
          for (const op of OPS) {
            const wrap =
              fault.kind === 'commit fails' ? (s: unknown) => failingCommit(target.name, s as object) : undefined;
            expect(await injectOnce(target, services, fault, op, wrap)).toBe('none');
          }
        }
      });
    }
  });
}

/** The loopback proxy's cut points: the moment is chosen by what the client is about to send. */
const CUTS: readonly {
  kind: string;
  decide: (history: string) => (chunk: Buffer) => CutDecision;
  mayCommit: boolean;
}[] = [
  {
    kind: 'proxy cuts before the history insert',
    // The INSERT's text, or (MySQL, whose store runs it as a prepared statement that the connection
    // caches) a COM_STMT_EXECUTE (0x17) carrying the entry's entity type, which only that statement binds.
    decide: (history) => (chunk) =>
      (chunk.includes(history) && chunk.includes('INSERT')) || (chunk[4] === 0x17 && chunk.includes('Account'))
        ? 'cut-before'
        : 'forward',
    mayCommit: false,
  },
  {
    kind: 'proxy cuts before COMMIT',
    decide: () => (chunk) => (chunk.includes('COMMIT') ? 'cut-before' : 'forward'),
    mayCommit: false,
  },
  {
    kind: 'proxy cuts after COMMIT was sent',
    decide: () => (chunk) => (chunk.includes('COMMIT') ? 'cut-after' : 'forward'),
    mayCommit: true,
  },
];

const PROXIED = [
  { name: 'postgres', url: POSTGRES_URL, open: (port: number) => openPostgres({ port }) },
  { name: 'mariadb', url: MARIADB_URL, open: (port: number) => openMariadb({ port }) },
] as const;

for (const db of PROXIED) {
  describe.runIf(runsHere(db.url === undefined ? `${db.name} URL is not set` : undefined))(
    `${db.name}: connections cut by a loopback proxy`,
    () => {
      let proxy: CuttingProxy;
      let target: Target;
      let services: FaultContext['services'];

      beforeAll(async () => {
        const url = new URL(db.url ?? '');
        proxy = new CuttingProxy('127.0.0.1', Number(url.port || (db.name === 'postgres' ? 5432 : 3306)));
        target = (await db.open(await proxy.listen())) as Target;
        services = accountServices(target);
      });
      afterAll(async () => {
        await target?.close();
        await proxy?.close();
      });

      for (const cut of CUTS) {
        it(`keeps all or nothing of a call and reports ConnectionLostError when the ${cut.kind}`, async () => {
          let committed = 0;
          for (let round = 0; round < ROUNDS; round++) {
            for (const op of OPS) {
              const fault: FaultKind = {
                kind: cut.kind,
                arm: () => {
                  proxy.cutWhen(cut.decide(target.historyTable));
                  return undefined;
                },
                expect: connectionLost,
                breaksSession: true,
              };
              const cutsBefore = proxy.cuts;
              const outcome = await injectOnce(target, services, fault, op);
              proxy.cutWhen(() => 'forward');
              expect(proxy.cuts, 'the proxy cut the connection at the chosen moment').toBe(cutsBefore + 1);
              if (outcome === 'all') committed++;
              if (!cut.mayCommit) expect(outcome).toBe('none');
            }
          }
          if (cut.mayCommit) {
            figures.add(
              'faults',
              `${cut.kind}: committed by the database, caller told ConnectionLostError`,
              target.name,
              committed,
            );
          }
        });
      }
    },
  );
}

describe.runIf(runsHere(POSTGRES_URL === undefined ? 'DATABASE_URL is not set' : undefined))(
  'postgres: a COMMIT the database refuses',
  () => {
    let target: Target;
    let services: FaultContext['services'];
    let admin: pg.Pool;
    const refuse = uniqueName('rel_refuse');

    beforeAll(async () => {
      target = (await openPostgres()) as Target;
      services = accountServices(target);
      admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      // A deferred constraint trigger: checked at COMMIT, after every write of the call succeeded.
      await admin.query(
        `CREATE FUNCTION ${refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
          `IF NEW.note = 'refused at commit' THEN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '23514'; END IF; ` +
          'RETURN NEW; END $$',
      );
      await admin.query(
        `CREATE CONSTRAINT TRIGGER ${refuse} AFTER INSERT OR UPDATE ON ${target.accountsTable} ` +
          `DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${refuse}()`,
      );
    });
    afterAll(async () => {
      await admin?.query(`DROP FUNCTION IF EXISTS ${refuse}() CASCADE`);
      await admin?.end();
      await target?.close();
    });

    it('rolls back, restores the entity and reports TransactionStateError COMMIT_FAILED with the driver error as cause', async () => {
      const kind: FaultKind = {
        kind: 'commit refused by a deferred constraint',
        arm: () => undefined,
        expect: (error) => {
          expect(error).toBeInstanceOf(TransactionStateError);
          expect((error as TransactionStateError).code).toBe('COMMIT_FAILED');
          expect(((error as Error).cause as { code?: string }).code).toBe('23514');
        },
        breaksSession: false,
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (const op of ['create', 'update'] as const) {
          // The call's entity carries the note the trigger refuses.
          expect(await injectOnce(target, services, kind, op, undefined, 'refused at commit')).toBe('none');
        }
      }
    });
  },
);

/**
 * MariaDB: the transaction ends inside the decorated method, which goes on as if nothing
 * happened. A deadlock it catches (InnoDB rolled the whole transaction back, the connection is in
 * autocommit) must fail the call with TRANSACTION_CLOSED and leave nothing, the history INSERT
 * never running in autocommit. A statement that commits implicitly (DDL) commits the entity
 * write before it, which nothing can undo: the call must fail with TRANSACTION_CLOSED, and the
 * history must hold nothing the library did not report (no entry for the failed call's version).
 */
describe.runIf(runsHere(MARIADB_URL === undefined ? 'MYSQL_URL is not set' : undefined))(
  'mariadb: the transaction ends inside the method',
  () => {
    let target: Target;
    let services: FaultContext['services'];
    let side: mariadb.Pool;
    const locks = uniqueName('rel_locks');
    const weight = uniqueName('rel_weight');
    const ddl = uniqueName('rel_ddl');

    beforeAll(async () => {
      target = (await openMariadb()) as Target;
      services = accountServices(target);
      const url = new URL(MARIADB_URL ?? '');
      side = mariadb.createPool({
        host: url.hostname,
        port: Number(url.port || 3306),
        user: decodeURIComponent(url.username || 'root'),
        password: decodeURIComponent(url.password),
        database: decodeURIComponent(url.pathname.slice(1)),
        connectionLimit: 2,
      });
      await side.query(`CREATE TABLE ${locks} (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB`);
      await side.query(`INSERT INTO ${locks} VALUES (1, 0), (2, 0)`);
      await side.query(`CREATE TABLE ${weight} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    });
    afterAll(async () => {
      await side?.query(`DROP TABLE IF EXISTS ${locks}, ${weight}, ${ddl}`);
      await side?.end();
      await target?.close();
    });

    /**
     * Makes the session a deadlock victim and swallows the 1213: `other` has inserted many rows
     * (so InnoDB rolls back the session, the lighter one) and locks row 2; the session locks row 1;
     * each then asks for the other's row.
     */
    async function caughtDeadlock(session: unknown): Promise<void> {
      const connection = session as mariadb.PoolConnection;
      const other = await side.getConnection();
      try {
        await other.beginTransaction();
        await other.query(
          `INSERT INTO ${weight} (id) VALUES ${Array.from({ length: 200 }, (_, i) => `(${i})`).join(', ')}`,
        );
        await other.query(`UPDATE ${locks} SET n = n + 1 WHERE id = 2`);
        await connection.query(`UPDATE ${locks} SET n = n + 1 WHERE id = 1`);
        const otherWaits = other.query(`UPDATE ${locks} SET n = n + 1 WHERE id = 1`);
        const caught = await connection.query(`UPDATE ${locks} SET n = n + 1 WHERE id = 2`).then(
          () => undefined,
          (error: unknown) => error,
        );
        await otherWaits;
        expect(caught, 'the session was the deadlock victim').toMatchObject({ errno: 1213 });
        figures.add('faults', 'deadlocks provoked and caught inside the method', 'mariadb');
      } finally {
        await other.rollback().catch(() => {});
        await other.release();
      }
    }

    const transactionClosed =
      (pattern: RegExp): Expectation =>
      (error) => {
        expect(error).toBeInstanceOf(TransactionStateError);
        expect((error as TransactionStateError).code).toBe('TRANSACTION_CLOSED');
        expect((error as Error).message).toMatch(pattern);
      };

    for (const point of ['afterEntityWrite', 'historyBeforeInsert'] as const) {
      it(`a deadlock caught inside the method (${point}): TRANSACTION_CLOSED, nothing of the call kept, no history in autocommit`, async () => {
        const fault: FaultKind = {
          kind: `deadlock caught ${point}`,
          arm: ({ services }) => {
            services.faults.arm(point, caughtDeadlock);
            return undefined;
          },
          expect: transactionClosed(/deadlock \(1213\)/),
          breaksSession: false,
        };
        for (let round = 0; round < Math.max(2, ROUNDS / 2); round++) {
          for (const op of OPS) expect(await injectOnce(target, services, fault, op)).toBe('none');
        }
      });
    }

    it('an implicit commit (DDL) inside the method: TRANSACTION_CLOSED, and history holds nothing of the failed call', async () => {
      for (let round = 0; round < Math.max(2, ROUNDS / 2); round++) {
        for (const op of OPS) {
          const existing = await seed(target, services, op);
          const account: Account = existing ?? { id: uniqueName('acc'), balance: 100, note: 'new' };
          if (op === 'update') account.balance += 5;
          const versionBefore = account.version;
          const historyBefore = await target.readHistory('Account', account.id);
          const session = await target.session();
          services.faults.arm('afterEntityWrite', async (s) => {
            await (s as mariadb.PoolConnection).query(`CREATE TABLE IF NOT EXISTS ${ddl} (id INT) ENGINE=InnoDB`);
          });
          const call =
            op === 'create'
              ? services.accounts.save
              : op === 'update'
                ? services.accounts.update
                : services.accounts.remove;
          const error = await call.call(services.accounts, account, session as never).catch((e: unknown) => e);
          services.faults.disarm();
          const idle = await target.sessionIdle(session).catch(() => false);
          await target.release(session, !idle);
          expect(idle).toBe(true);
          figures.add('faults', 'injected', 'mariadb');
          figures.add('faults', 'implicit commit (DDL) inside the method', 'mariadb');
          transactionClosed(/commits implicitly/)(error, undefined);
          expect(account.version).toBe(versionBefore);
          // What the error says happened: the write before the DDL was committed, without history.
          const { row, history } = await target.readEntity('Account', account.id);
          const problems: string[] = [];
          if (JSON.stringify(history) !== JSON.stringify(historyBefore)) problems.push('history changed');
          if (op === 'delete' ? row !== undefined : row?.version !== (versionBefore ?? 0) + 1) {
            problems.push(`row ${JSON.stringify(row)} is not the write the error reports as committed`);
          }
          figures.add('invariants', 'checks', 'mariadb');
          figures.add('invariants', 'invariant violations', 'mariadb', problems.length);
          expect(problems).toEqual([]);
          expect(await target.poolHealthy(false)).toBe(true);
        }
      }
    });
  },
);
