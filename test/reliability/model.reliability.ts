import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventHistoryError,
  HistoryWriteError,
  TransactionRetriesExhaustedError,
  TransactionStateError,
  VersionConflictError,
} from '../../src/index.js';
import { loadLibraryCopy } from '../support/library-copy.js';
import { useFigures } from './support/figures.js';
import { entityViolations } from './support/invariants.js';
import { accountServices, type FaultPoint, InjectedFault } from './support/services.js';
import { type Account, runsHere, TARGETS, type Target, type TargetName, uniqueName } from './support/targets.js';

const figures = useFigures('model');
const SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31);
/** Sequences per database; together at least 1,000 per run. */
const SEQUENCES: Readonly<Record<TargetName, number>> = {
  postgres: Number(process.env.RELIABILITY_SEQUENCES_POSTGRES ?? 800),
  mariadb: Number(process.env.RELIABILITY_SEQUENCES_MARIADB ?? 600),
  sqlite: Number(process.env.RELIABILITY_SEQUENCES_SQLITE ?? 1200),
};
/** The time each database's property may take before fast-check stops it (and the test fails). */
const TIME_LIMIT_MS = Number(process.env.RELIABILITY_MODEL_TIME_LIMIT_MS ?? 100_000);
const SLOTS = 3;
const FAULT_POINTS: readonly FaultPoint[] = [
  'beforeMethod',
  'afterEntityWrite',
  'historyBeforeInsert',
  'historyAfterInsert',
];

/** What the reference model knows of one entity. */
interface ModelEntity {
  exists: boolean;
  /** The latest version written (the delete entry's, after a delete); 0 before the create. */
  version: number;
  balance: number;
  note: string;
}

type Model = ModelEntity[];

interface Real {
  readonly target: Target;
  readonly services: ReturnType<typeof accountServices<unknown>>;
  /** The same services, decorated by a second copy of the library loaded in the process. */
  readonly copied: ReturnType<typeof accountServices<unknown>>;
  readonly session: unknown;
  /** The caller's objects, one per slot, as a service would hold them between calls. */
  readonly accounts: Account[];
  commands: number;
}

type Command = fc.AsyncCommand<Model, Real>;

async function expectMatches(real: Real, model: Model, slot: number): Promise<void> {
  const expected = model[slot] as ModelEntity;
  const account = real.accounts[slot] as Account;
  const { row, history } = await real.target.readEntity('Account', account.id);
  expect(history.map((entry) => entry.version)).toEqual(Array.from({ length: expected.version }, (_, i) => i + 1));
  if (!expected.exists) {
    expect(row).toBeUndefined();
    return;
  }
  expect(row).toMatchObject({ version: expected.version, balance: expected.balance, note: expected.note });
  expect(account.version).toBe(expected.version);
}

/** Runs a call that must fail without changing anything; returns the error. */
async function failing(real: Real, slots: number[], call: () => Promise<unknown>): Promise<unknown> {
  const before = slots.map((slot) => {
    const a = real.accounts[slot] as Account;
    return { version: a.version, timestamp: a.timestamp };
  });
  let error: unknown;
  try {
    await call();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeDefined();
  slots.forEach((slot, i) => {
    const a = real.accounts[slot] as Account;
    expect(a.version).toBe(before[i]?.version);
    expect(a.timestamp).toBe(before[i]?.timestamp);
  });
  return error;
}

class Create implements Command {
  constructor(readonly slot: number) {}
  check = (model: Readonly<Model>) => model[this.slot]?.version === 0;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const account = real.accounts[this.slot] as Account;
    await real.services.accounts.save(account, real.session);
    model[this.slot] = { exists: true, version: 1, balance: account.balance, note: account.note };
    await expectMatches(real, model, this.slot);
  }
  toString = () => `create(${this.slot})`;
}

class Update implements Command {
  constructor(
    readonly slot: number,
    readonly delta: number,
  ) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const account = real.accounts[this.slot] as Account;
    account.balance += this.delta;
    account.note = `n${this.delta}`;
    await real.services.accounts.update(account, real.session);
    const entity = model[this.slot] as ModelEntity;
    Object.assign(entity, { version: entity.version + 1, balance: account.balance, note: account.note });
    await expectMatches(real, model, this.slot);
  }
  toString = () => `update(${this.slot}, ${this.delta})`;
}

class Delete implements Command {
  constructor(readonly slot: number) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    await real.services.accounts.remove(real.accounts[this.slot] as Account, real.session);
    const entity = model[this.slot] as ModelEntity;
    Object.assign(entity, { exists: false, version: entity.version + 1 });
    await expectMatches(real, model, this.slot);
  }
  toString = () => `delete(${this.slot})`;
}

/** An update from a copy one version behind: a lost race, which must change nothing. */
class StaleUpdate implements Command {
  constructor(readonly slot: number) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true && (model[this.slot]?.version ?? 0) >= 2;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const current = real.accounts[this.slot] as Account;
    const stale: Account = { ...current, version: (current.version ?? 0) - 1, balance: -1, note: 'stale' };
    const staleVersion = stale.version;
    let error: unknown;
    try {
      await real.services.accounts.update(stale, real.session);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(stale.version).toBe(staleVersion);
    figures.add('storm', 'conflicts (stale updates in the model test)', real.target.name);
    await expectMatches(real, model, this.slot);
  }
  toString = () => `staleUpdate(${this.slot})`;
}

/** A decorated transfer whose nested decorated update runs in the same transaction. */
class Transfer implements Command {
  constructor(
    readonly from: number,
    readonly to: number,
    readonly amount: number,
    readonly fault: FaultPoint | undefined,
  ) {}
  check = (model: Readonly<Model>) =>
    this.from !== this.to && model[this.from]?.exists === true && model[this.to]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const from = real.accounts[this.from] as Account;
    const to = real.accounts[this.to] as Account;
    if (this.fault === undefined) {
      await real.services.transfers.transfer(from, real.session, to, this.amount);
      for (const [slot, account] of [
        [this.from, from],
        [this.to, to],
      ] as const) {
        const entity = model[slot] as ModelEntity;
        Object.assign(entity, { version: entity.version + 1, balance: account.balance });
      }
    } else {
      const balances = [from.balance, to.balance];
      const fault = new InjectedFault(this.fault);
      real.services.faults.arm(this.fault, () => {
        throw fault;
      });
      const error = await failing(real, [this.from, this.to], () =>
        real.services.transfers.transfer(from, real.session, to, this.amount),
      );
      real.services.faults.disarm();
      expect(error === fault || (error instanceof EventHistoryError && error.cause === fault)).toBe(true);
      figures.add('faults', 'injected', real.target.name);
      figures.add('faults', `model: nested call, exception ${this.fault}`, real.target.name);
      // The transfer changed the balances in memory before it failed; the caller reloads them.
      [from.balance, to.balance] = balances as [number, number];
    }
    await expectMatches(real, model, this.from);
    await expectMatches(real, model, this.to);
  }
  toString = () => `transfer(${this.from} -> ${this.to}, ${this.amount}${this.fault ? `, fault ${this.fault}` : ''})`;
}

/** An update with a fault injected at one step: nothing may change. */
class FaultyUpdate implements Command {
  constructor(
    readonly slot: number,
    readonly point: FaultPoint,
  ) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const account = real.accounts[this.slot] as Account;
    const fault = new InjectedFault(this.point);
    real.services.faults.arm(this.point, () => {
      throw fault;
    });
    const note = account.note;
    account.note = 'faulty';
    const error = await failing(real, [this.slot], () => real.services.accounts.update(account, real.session));
    real.services.faults.disarm();
    account.note = note;
    expect(error === fault || (error instanceof EventHistoryError && error.cause === fault)).toBe(true);
    figures.add('faults', 'injected', real.target.name);
    figures.add('faults', `model: update, exception ${this.point}`, real.target.name);
    await expectMatches(real, model, this.slot);
  }
  toString = () => `faultyUpdate(${this.slot}, ${this.point})`;
}

/** How a call inside the caller's own transaction fails, after (or instead of) its write. */
type JoinedFailure = 'afterEntityWrite' | 'historyAfterInsert' | 'stale';

/**
 * The caller begins a transaction, makes a decorated update that succeeds and one that fails
 * after it wrote, catches that error and commits: the first update is kept, nothing of the
 * failed one is (issue 11: a joined call that fails must leave none of its writes behind).
 */
class JoinedCalls implements Command {
  constructor(
    readonly kept: number,
    readonly failed: number,
    readonly failure: JoinedFailure,
  ) {}
  check = (model: Readonly<Model>) =>
    this.kept !== this.failed &&
    model[this.kept]?.exists === true &&
    model[this.failed]?.exists === true &&
    (this.failure !== 'stale' || (model[this.failed]?.version ?? 0) >= 2);
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const kept = real.accounts[this.kept] as Account;
    const failed = real.accounts[this.failed] as Account;
    await real.target.exec(real.session, 'BEGIN');
    try {
      kept.balance += 1;
      kept.note = 'joined';
      await real.services.accounts.update(kept, real.session);
      const { balance, note } = failed;
      let error: unknown;
      if (this.failure === 'stale') {
        const stale: Account = { ...failed, version: (failed.version ?? 0) - 1, balance: -1, note: 'stale' };
        error = await failing(real, [], () => real.services.accounts.update(stale, real.session));
        expect(error).toBeInstanceOf(VersionConflictError);
      } else {
        const fault = new InjectedFault(this.failure);
        real.services.faults.arm(this.failure, () => {
          throw fault;
        });
        failed.balance += 7;
        failed.note = 'dropped';
        error = await failing(real, [this.failed], () => real.services.accounts.update(failed, real.session));
        real.services.faults.disarm();
        expect(error === fault || (error instanceof EventHistoryError && error.cause === fault)).toBe(true);
        [failed.balance, failed.note] = [balance, note];
      }
      await real.target.exec(real.session, 'COMMIT');
    } catch (error) {
      await real.target.exec(real.session, 'ROLLBACK').catch(() => undefined);
      throw error;
    }
    const entity = model[this.kept] as ModelEntity;
    Object.assign(entity, { version: entity.version + 1, balance: kept.balance, note: kept.note });
    figures.add('model', `joined calls: caller commits after a failure (${this.failure})`, real.target.name);
    await expectMatches(real, model, this.kept);
    await expectMatches(real, model, this.failed);
  }
  toString = () => `joinedCalls(keep ${this.kept}, fail ${this.failed} at ${this.failure})`;
}

/**
 * A decorated call that starts another on a timer and returns; before the timer fires, a second
 * call holds the session and then fails. The late call must run in a transaction of its own (not
 * in the failing one, not without one), and be kept.
 */
class LateCall implements Command {
  constructor(
    readonly parent: number,
    readonly late: number,
  ) {}
  check = (model: Readonly<Model>) =>
    this.parent !== this.late && model[this.parent]?.exists === true && model[this.late]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const parent = real.accounts[this.parent] as Account;
    const late = real.accounts[this.late] as Account;
    let secondHolds!: () => void;
    const holding = new Promise<void>((resolve) => {
      secondHolds = resolve;
    });
    let latePromise: Promise<unknown> | undefined;
    real.services.faults.arm('afterEntityWrite', () => {
      latePromise = new Promise((resolve, reject) => {
        setTimeout(async () => {
          // Fires inside the parent's async context, once the second call holds the session.
          await holding;
          late.balance += 3;
          late.note = 'late';
          real.services.accounts.update(late, real.session).then(resolve, reject);
        }, 0);
      });
    });
    parent.balance += 1;
    parent.note = 'parent';
    await real.services.accounts.update(parent, real.session);
    const entity = model[this.parent] as ModelEntity;
    Object.assign(entity, { version: entity.version + 1, balance: parent.balance, note: parent.note });
    // The next call holds the session while the timer fires, then fails.
    const fault = new InjectedFault('afterEntityWrite');
    real.services.faults.arm('afterEntityWrite', async () => {
      secondHolds();
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw fault;
    });
    const { balance, note } = parent;
    parent.balance += 100;
    parent.note = 'failing';
    await failing(real, [this.parent], () => real.services.accounts.update(parent, real.session));
    real.services.faults.disarm();
    [parent.balance, parent.note] = [balance, note];
    await latePromise;
    const lateEntity = model[this.late] as ModelEntity;
    Object.assign(lateEntity, { version: lateEntity.version + 1, balance: late.balance, note: late.note });
    figures.add('model', 'late calls after their parent returned', real.target.name);
    await expectMatches(real, model, this.parent);
    await expectMatches(real, model, this.late);
  }
  toString = () => `lateCall(parent ${this.parent}, late ${this.late})`;
}

/**
 * A method whose statement fails and that catches the error. PostgreSQL has aborted the
 * transaction: the call must fail with nothing kept. MariaDB and SQLite undo only the statement:
 * the call succeeds.
 */
class CaughtStatementError implements Command {
  constructor(readonly slot: number) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const account = real.accounts[this.slot] as Account;
    real.services.faults.arm('afterEntityWrite', async (session) => {
      try {
        await real.target.failingStatement(session);
      } catch {
        // The method catches it, as user code does.
      }
    });
    const { balance, note } = account;
    account.balance += 2;
    account.note = 'caught';
    if (real.target.name === 'postgres') {
      const error = await failing(real, [this.slot], () => real.services.accounts.update(account, real.session));
      // The transaction is aborted: the history write is refused, or the adapter notices first.
      expect(error instanceof TransactionStateError || error instanceof HistoryWriteError).toBe(true);
      [account.balance, account.note] = [balance, note];
    } else {
      await real.services.accounts.update(account, real.session);
      const entity = model[this.slot] as ModelEntity;
      Object.assign(entity, { version: entity.version + 1, balance: account.balance, note: account.note });
    }
    real.services.faults.disarm();
    figures.add('model', 'failed statements caught inside the method', real.target.name);
    await expectMatches(real, model, this.slot);
  }
  toString = () => `caughtStatementError(${this.slot})`;
}

/**
 * A method that changes the entity itself (`balance += amount`) meets a transient failure
 * (serialization failure, deadlock, busy) `failures` times: retried, it has the effect of one
 * call; out of retries (3), it is a typed error and nothing is kept, in memory either.
 */
class RetriedDeposit implements Command {
  constructor(
    readonly slot: number,
    readonly amount: number,
    readonly failures: number,
  ) {}
  check = (model: Readonly<Model>) => model[this.slot]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const account = real.accounts[this.slot] as Account;
    let left = this.failures;
    const arm = (): void =>
      real.services.faults.arm('afterEntityWrite', () => {
        left -= 1;
        if (left > 0) arm();
        throw real.target.transientError();
      });
    if (left > 0) arm();
    const { balance, note, version } = account;
    if (this.failures <= 3) {
      await real.services.deposits.deposit(account, real.session, this.amount);
      expect(account.balance).toBe(balance + this.amount);
      const entity = model[this.slot] as ModelEntity;
      Object.assign(entity, { version: entity.version + 1, balance: account.balance, note: account.note });
    } else {
      const error = await failing(real, [this.slot], () =>
        real.services.deposits.deposit(account, real.session, this.amount),
      );
      expect(error).toBeInstanceOf(TransactionRetriesExhaustedError);
      expect(account).toMatchObject({ balance, note, version });
    }
    real.services.faults.disarm();
    figures.add('model', 'deposits retried after transient failures', real.target.name, Math.min(this.failures, 4));
    await expectMatches(real, model, this.slot);
  }
  toString = () => `retriedDeposit(${this.slot}, ${this.amount}, ${this.failures} transient failures)`;
}

/**
 * A deposit decorated by a second copy of the library, whose method makes a nested update
 * decorated by the first copy: one unit of work whichever copy each call comes from, kept whole
 * or, when the method then fails, undone whole.
 */
class OtherCopy implements Command {
  constructor(
    readonly slot: number,
    readonly other: number,
    readonly fails: boolean,
  ) {}
  check = (model: Readonly<Model>) =>
    this.slot !== this.other && model[this.slot]?.exists === true && model[this.other]?.exists === true;
  async run(model: Model, real: Real): Promise<void> {
    real.commands++;
    const from = real.accounts[this.slot] as Account;
    const to = real.accounts[this.other] as Account;
    const before = { from: [from.balance, from.note] as const, to: [to.balance, to.note] as const };
    const fault = new InjectedFault('afterEntityWrite');
    real.copied.faults.arm('afterEntityWrite', async (session) => {
      to.balance += 5;
      to.note = 'nested, other copy';
      await real.services.accounts.update(to, session);
      if (this.fails) throw fault;
    });
    if (this.fails) {
      const error = await failing(real, [this.slot, this.other], () =>
        real.copied.deposits.deposit(from, real.session, 5),
      );
      expect(error).toBe(fault);
      [from.balance, from.note] = before.from;
      [to.balance, to.note] = before.to;
    } else {
      await real.copied.deposits.deposit(from, real.session, 5);
      for (const [index, account] of [
        [this.slot, from],
        [this.other, to],
      ] as const) {
        const entity = model[index] as ModelEntity;
        Object.assign(entity, { version: entity.version + 1, balance: account.balance, note: account.note });
      }
    }
    real.copied.faults.disarm();
    figures.add('model', 'calls through a second copy of the library', real.target.name);
    await expectMatches(real, model, this.slot);
    await expectMatches(real, model, this.other);
  }
  toString = () => `otherCopy(${this.slot} with nested ${this.other}${this.fails ? ', fails' : ''})`;
}

const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const point = fc.constantFrom(...FAULT_POINTS);
const commands = fc.commands(
  [
    // Weighted: a sequence only gets going once its entities exist.
    slot.map((s) => new Create(s)),
    slot.map((s) => new Create(s)),
    slot.map((s) => new Create(s)),
    fc.tuple(slot, fc.integer({ min: -50, max: 50 })).map(([s, d]) => new Update(s, d)),
    slot.map((s) => new Delete(s)),
    slot.map((s) => new StaleUpdate(s)),
    fc
      .tuple(slot, slot, fc.integer({ min: 1, max: 20 }), fc.option(point, { freq: 3 }))
      .map(([a, b, n, f]) => new Transfer(a, b, n, f ?? undefined)),
    fc.tuple(slot, point).map(([s, p]) => new FaultyUpdate(s, p)),
    fc
      .tuple(slot, slot, fc.constantFrom<JoinedFailure>('afterEntityWrite', 'historyAfterInsert', 'stale'))
      .map(([a, b, f]) => new JoinedCalls(a, b, f)),
    fc.tuple(slot, slot).map(([a, b]) => new LateCall(a, b)),
    slot.map((s) => new CaughtStatementError(s)),
    fc
      .tuple(slot, fc.integer({ min: 1, max: 30 }), fc.constantFrom(1, 1, 2, 4))
      .map(([s, n, f]) => new RetriedDeposit(s, n, f)),
    fc.tuple(slot, slot, fc.boolean()).map(([a, b, f]) => new OtherCopy(a, b, f)),
  ],
  { maxCommands: 16, size: 'max' },
);

for (const entry of TARGETS) {
  describe.runIf(runsHere(entry.unavailable))(`${entry.name}: model-based sequences`, () => {
    let target: Target;
    let services: Real['services'];
    let copied: Real['copied'];
    let dispose: (() => void) | undefined;

    beforeAll(async () => {
      target = await entry.open();
      services = accountServices(target);
      const copy = await loadLibraryCopy();
      dispose = copy.dispose;
      copied = accountServices(target, { library: copy.library });
      figures.note('Model test seed', String(SEED));
      figures.note(`Server (${entry.name})`, await target.serverVersion());
    });
    afterAll(async () => {
      dispose?.();
      await target?.close();
    });

    it(`agrees with the reference model over ${SEQUENCES[entry.name]} random sequences of calls and faults`, async () => {
      let sequences = 0;
      let violations = 0;
      await fc.assert(
        fc.asyncProperty(commands, async (cmds) => {
          sequences++;
          const prefix = uniqueName('m');
          const session = await target.session();
          const accounts = Array.from({ length: SLOTS }, (_, i) => ({
            id: `${prefix}_${i}`,
            balance: 100,
            note: 'new',
          }));
          const real: Real = { target, services, copied, session, accounts, commands: 0 };
          try {
            await fc.asyncModelRun(
              () => ({
                model: Array.from({ length: SLOTS }, () => ({ exists: false, version: 0, balance: 0, note: '' })),
                real,
              }),
              cmds,
            );
          } finally {
            services.faults.disarm();
            copied.faults.disarm();
            // Whatever a step left, the session must be back outside any transaction.
            expect(await target.sessionIdle(session)).toBe(true);
            await target.release(session);
          }
          for (const account of accounts) {
            const problems = await entityViolations(target, 'Account', account.id);
            figures.add('invariants', 'checks', target.name);
            violations += problems.length;
            figures.add('invariants', 'invariant violations', target.name, problems.length);
            expect(problems).toEqual([]);
          }
          figures.add('model', 'commands', target.name, real.commands);
        }),
        {
          numRuns: SEQUENCES[entry.name],
          seed: SEED,
          interruptAfterTimeLimit: TIME_LIMIT_MS,
          markInterruptAsFailure: true,
        },
      );
      figures.add('model', 'sequences', target.name, sequences);
      expect(violations).toBe(0);
      expect(sequences).toBeGreaterThanOrEqual(SEQUENCES[entry.name]);
    });
  });
}
