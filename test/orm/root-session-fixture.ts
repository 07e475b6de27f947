import type { DatabaseFixture, HistoryTamper, OrderRow, SuiteStore } from '../integration/fixture.js';
import { type HeldTransaction, type Switchable, switchable } from './switchable.js';

/** One ORM on one database, as {@link RootSessionFixture} drives it through the shared suite. */
export interface OrmDriver<S extends object> {
  readonly name: string;
  readonly unavailable: string | undefined;
  readonly concurrentSessions: boolean;
  open(): Promise<{ root: S; store: SuiteStore<unknown>; tamper: HistoryTamper }>;
  close(): Promise<void>;
  /** Opens a transaction with the ORM's own API and holds it until commit or rollback. */
  begin(root: S): Promise<HeldTransaction<S>>;
  insert(session: S, order: OrderRow): Promise<unknown>;
  update(session: S, order: OrderRow, expected: number | undefined): Promise<unknown>;
  remove(session: S, order: OrderRow, expected: number | undefined): Promise<unknown>;
  read(id: string): Promise<OrderRow | undefined>;
  countHistory(entityType: string, entityId: string): Promise<number>;
  /** A trivial query through the root, proving it usable. */
  ping(root: S): Promise<boolean>;
}

/**
 * The shared suite through an ORM whose transactions are objects of their own: a session is the
 * ORM's root object (the library opens the transaction for each call), and the caller's own
 * transaction is a real one opened with the ORM's API, behind the suite's session variable.
 */
export class RootSessionFixture<S extends object> implements DatabaseFixture<S> {
  readonly #switches = new WeakMap<object, { handle: Switchable<S>; held?: HeldTransaction<S> }>();
  #opened: { root: S; store: SuiteStore<unknown>; tamper: HistoryTamper } | undefined;

  constructor(readonly driver: OrmDriver<S>) {}

  get name(): string {
    return this.driver.name;
  }
  get unavailable(): string | undefined {
    return this.driver.unavailable;
  }
  get concurrentSessions(): boolean {
    return this.driver.concurrentSessions;
  }

  get #state(): { root: S; store: SuiteStore<unknown>; tamper: HistoryTamper } {
    if (!this.#opened) throw new Error(`the ${this.name} fixture is not open`);
    return this.#opened;
  }

  get store(): SuiteStore<unknown> {
    return this.#state.store as SuiteStore<unknown>;
  }

  get tamper(): HistoryTamper {
    return this.#state.tamper;
  }

  async open(): Promise<void> {
    this.#opened = await this.driver.open();
  }

  async close(): Promise<void> {
    this.#opened = undefined;
    await this.driver.close();
  }

  async session(): Promise<S> {
    const handle = switchable(this.#state.root);
    this.#switches.set(handle.session, { handle });
    return handle.session;
  }

  async release(session: S): Promise<void> {
    await this.#entry(session).held?.rollback();
    this.#switches.delete(session);
  }

  insertOrder = (session: S, order: OrderRow) => this.driver.insert(session, order);
  updateOrder = (session: S, order: OrderRow, expected: number | undefined) =>
    this.driver.update(session, order, expected);
  deleteOrder = (session: S, order: OrderRow, expected: number | undefined) =>
    this.driver.remove(session, order, expected);
  readOrder = (id: string) => this.driver.read(id);
  countHistory = (entityType: string, entityId: string) => this.driver.countHistory(entityType, entityId);

  async begin(session: S): Promise<void> {
    const entry = this.#entry(session);
    entry.held = await this.driver.begin(this.#state.root);
    entry.handle.use(entry.held.tx);
  }

  async commit(session: S): Promise<void> {
    await this.#end(session, 'commit');
  }

  async rollback(session: S): Promise<void> {
    await this.#end(session, 'rollback');
  }

  async isIdle(session: S): Promise<boolean> {
    const entry = this.#entry(session);
    return (
      entry.held === undefined && entry.handle.current() === this.#state.root && this.driver.ping(this.#state.root)
    );
  }

  async #end(session: S, how: 'commit' | 'rollback'): Promise<void> {
    const entry = this.#entry(session);
    const held = entry.held;
    entry.held = undefined;
    entry.handle.reset();
    await held?.[how]();
  }

  #entry(session: S): { handle: Switchable<S>; held?: HeldTransaction<S> } {
    const entry = this.#switches.get(session);
    if (!entry) throw new Error('not a session of this fixture');
    return entry;
  }
}
