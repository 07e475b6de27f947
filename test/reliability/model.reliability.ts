import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHistoryError, VersionConflictError } from '../../src/index.js';
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
  ],
  { maxCommands: 16, size: 'max' },
);

for (const entry of TARGETS) {
  describe.runIf(runsHere(entry.unavailable))(`${entry.name}: model-based sequences`, () => {
    let target: Target;
    let services: Real['services'];

    beforeAll(async () => {
      target = await entry.open();
      services = accountServices(target);
      figures.note('Model test seed', String(SEED));
      figures.note(`Server (${entry.name})`, await target.serverVersion());
    });
    afterAll(() => target?.close());

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
          const real: Real = { target, services, session, accounts, commands: 0 };
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
