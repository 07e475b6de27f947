import { randomUUID } from 'node:crypto';
import { shared } from '../shared-state.js';

// ORMs open one transaction object per transaction (a Knex trx, a Kysely Transaction, a Drizzle
// tx), so a UUID attached to that object is the transaction's id. Only objects that stand for
// one transaction may be given here: a reused one (TypeORM's runner.manager, a Drizzle database
// over one pg Client) would hand its id to every later transaction.
const ids = shared('orm-transaction-ids', () => new WeakMap<object, string>());

/** @internal The txId of the transaction an ORM's transaction object stands for. */
export function transactionObjectId(transaction: object): string {
  let id = ids.get(transaction);
  if (id === undefined) {
    id = randomUUID();
    ids.set(transaction, id);
  }
  return id;
}
