import type { HistoryEntry, HistoryWriter } from '../../../src/index.js';
import * as library from '../../../src/index.js';
import type { Account, Target } from './targets.js';

/** The library's exports, from this module graph or from a copy of it. */
export type Library = typeof library;

/** The moments of a call at which a fault can be injected, in the order a call reaches them. */
export type FaultPoint = 'beforeMethod' | 'afterEntityWrite' | 'historyBeforeInsert' | 'historyAfterInsert';

/** One-shot actions run when a call reaches a point; an action that throws is the injected fault. */
export class Faults<S> {
  readonly #armed = new Map<FaultPoint, (session: S) => Promise<void> | void>();

  arm(point: FaultPoint, action: (session: S) => Promise<void> | void): void {
    this.#armed.set(point, action);
  }

  disarm(): void {
    this.#armed.clear();
  }

  async reach(point: FaultPoint, session: S): Promise<void> {
    const action = this.#armed.get(point);
    if (action === undefined) return;
    this.#armed.delete(point);
    await action(session);
  }
}

/** A fault the suite injects on purpose, so that a test can tell it from any other error. */
export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`injected fault at ${point}`);
    this.name = 'InjectedFault';
  }
}

/**
 * The account service as a user writes it: raw repository code through the session, the update
 * and delete guarded by `expectedVersion`, and the built-in store behind a history writer that
 * passes through the fault points. `transfer` is a decorated call that makes a nested one.
 */
export function accountServices<S>(
  target: Target<S>,
  options: {
    redact?: readonly string[];
    /** false: the update forgets its version guard. */
    guarded?: boolean;
    /** The copy of the library whose decorators the services use (another module graph of `src`). */
    library?: Library;
  } = {},
) {
  const { expectedVersion, HistoryTracked, Versioned } = options.library ?? library;
  const guard = (account: Account): number | undefined =>
    options.guarded === false ? undefined : expectedVersion(account);
  const faults = new Faults<S>();
  const history: HistoryWriter<S> = {
    async save(entry: HistoryEntry, session?: S): Promise<void> {
      await faults.reach('historyBeforeInsert', session as S);
      await target.store.save(entry, session);
      await faults.reach('historyAfterInsert', session as S);
    },
  };
  const methods = { save: 'create', update: 'update', remove: 'delete' } as const;
  const tracked = { methods, entityType: 'Account', redact: options.redact ?? ['secret'] };

  @Versioned({ methods })
  @HistoryTracked('history', tracked)
  class AccountService {
    constructor(readonly history: HistoryWriter<S>) {}

    async save(account: Account, session: S): Promise<unknown> {
      await faults.reach('beforeMethod', session);
      const result = await target.insert(session, account);
      await faults.reach('afterEntityWrite', session);
      return result;
    }

    async update(account: Account, session: S): Promise<unknown> {
      await faults.reach('beforeMethod', session);
      const result = await target.update(session, account, guard(account));
      await faults.reach('afterEntityWrite', session);
      return result;
    }

    async remove(account: Account, session: S): Promise<unknown> {
      await faults.reach('beforeMethod', session);
      const result = await target.remove(session, account, expectedVersion(account));
      await faults.reach('afterEntityWrite', session);
      return result;
    }
  }

  const accounts = new AccountService(history);

  /** A method that changes the entity itself, as real services do (`wallet.balance += amount`). */
  class DepositService {
    constructor(readonly history: HistoryWriter<S>) {}

    @Versioned({ op: 'update' })
    @HistoryTracked('history', { entityType: 'Account', op: 'update', redact: options.redact ?? ['secret'] })
    async deposit(account: Account, session: S, amount: number): Promise<unknown> {
      account.balance += amount;
      account.note = `deposit ${amount}`;
      await faults.reach('beforeMethod', session);
      const result = await target.update(session, account, guard(account));
      await faults.reach('afterEntityWrite', session);
      return result;
    }
  }

  /** Moves money: updates `from` and, through the decorated service (a nested call), `to`. */
  class TransferService {
    constructor(readonly history: HistoryWriter<S>) {}

    @Versioned({ op: 'update' })
    @HistoryTracked('history', { entityType: 'Account', op: 'update' })
    async transfer(from: Account, session: S, to: Account, amount: number): Promise<unknown> {
      from.balance -= amount;
      to.balance += amount;
      const result = await target.update(session, from, expectedVersion(from));
      await accounts.update(to, session);
      return result;
    }
  }

  return { faults, history, accounts, transfers: new TransferService(history), deposits: new DepositService(history) };
}
