/**
 * Teaches the library how to run work inside a transaction on one kind of session object.
 * Adapters are matched structurally, so the library never imports a driver.
 *
 * ```ts
 * const adapter: TransactionAdapter<MySession> = {
 *   name: 'my-db',
 *   matches: (s): s is MySession => s instanceof MySession,
 *   isActive: (s) => s.inTransaction,
 *   async run(s, work) {
 *     await s.begin();
 *     try { const r = await work(); await s.commit(); return r; }
 *     catch (e) { await s.rollback(); throw e; }
 *   },
 * };
 * ```
 */
export interface TransactionAdapter<S = unknown> {
  readonly name: string;
  /** Structural check: is this session one this adapter drives? */
  matches(session: unknown): session is S;
  /** Is the session already inside a transaction (which a call then joins)? */
  isActive(session: S): boolean;
  /**
   * Begin a transaction, run `work`, commit; roll back and rethrow when anything fails. An adapter
   * whose transaction is a new object (an ORM's `transaction(async (tx) => …)` callback) passes it
   * to `work`: the call then runs with it in place of `session` (argument, `currentSession()` and
   * history write), so the method's writes land inside the transaction.
   */
  run<R>(session: S, work: (transaction?: unknown) => Promise<R>): Promise<R>;
  /** A unique-key violation or write conflict: reported as `VersionConflictError`. */
  isConflict?(error: unknown): boolean;
  /** A failure worth retrying the whole transaction for (serialization failure, deadlock). */
  isTransient?(error: unknown): boolean;
  /** The database's own id of the running transaction, when it has one. */
  transactionId?(session: S): string | undefined;
  /**
   * Set when the adapter learns the id of a transaction it began only with the reply to the
   * transaction's first statement (the pg adapter sends BEGIN with that statement, to save its
   * round trip): the pipeline then asks `transactionId` when the id is first read, not when the
   * transaction begins, and uses a random UUID if the id is read before it is known.
   */
  readonly transactionIdArrivesLate?: boolean;
  /**
   * The driver connection an ORM session runs on (a pg client, a better-sqlite3 Database, a mysql2
   * connection), which the built-in history stores write through. Omitted by driver adapters,
   * whose session is the connection.
   */
  connection?(session: S): unknown;
  /**
   * Runs `work` inside the transaction already open on `session` (one the caller began, or an
   * enclosing decorated call's) so that a failure leaves nothing of the call's own writes behind:
   * a SAVEPOINT before `work`, ROLLBACK TO SAVEPOINT when it rejects, RELEASE when it resolves.
   * Where the database has no savepoints (MongoDB), a failure aborts the whole transaction, so it
   * can no longer be committed, and the rejection says so. Without `join`, a joined call runs in
   * the open transaction as it is, and a failure keeps whatever the method wrote.
   */
  join?<R>(session: S, work: () => Promise<R>): Promise<R>;
}
