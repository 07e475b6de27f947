import { randomUUID } from 'node:crypto';

// ORMs open one transaction object per transaction (a Knex trx, a Kysely Transaction, a Drizzle
// tx, a TypeORM EntityManager), so a UUID attached to that object is the transaction's id.
const ids = new WeakMap<object, string>();

/** @internal The txId of the transaction an ORM's transaction object stands for. */
export function transactionObjectId(transaction: object): string {
  let id = ids.get(transaction);
  if (id === undefined) {
    id = randomUUID();
    ids.set(transaction, id);
  }
  return id;
}
