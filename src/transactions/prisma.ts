import type { TransactionAdapter } from './adapter.js';
import { joinWithSavepoint } from './savepoint.js';

/**
 * The part of a Prisma client (or of the transaction client of `$transaction(async (tx) => …)`)
 * the adapter uses. Prisma marks a transaction client with its scope context
 * (`Symbol.for('prisma.client.transaction.scope_context')`, kind `'nested'`, Prisma 7).
 *
 * ```ts
 * const session: PrismaClientLike = new PrismaClient({ adapter: new PrismaPg({ connectionString }) });
 * ```
 */
export interface PrismaClientLike {
  $transaction<R>(work: (tx: PrismaClientLike) => Promise<R>): Promise<R>;
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

const SCOPE = Symbol.for('prisma.client.transaction.scope_context');

function scopeOf(client: PrismaClientLike): { kind?: unknown; txId?: unknown } | undefined {
  const scope = (client as unknown as Record<symbol, unknown>)[SCOPE];
  return scope !== null && typeof scope === 'object' ? (scope as { kind?: unknown; txId?: unknown }) : undefined;
}

function isPrisma(session: unknown): session is PrismaClientLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Partial<PrismaClientLike>;
  return (
    typeof candidate.$transaction === 'function' &&
    typeof candidate.$queryRawUnsafe === 'function' &&
    typeof candidate.$executeRawUnsafe === 'function'
  );
}

const inTransaction = (client: PrismaClientLike): boolean => scopeOf(client)?.kind === 'nested';

function prismaCode(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^P\d{4}$/.test(code) ? code : undefined;
}

/** Serialization failure and deadlock: PostgreSQL 40001 / 40P01, MySQL 1213 / 1205. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(['40001', '40P01', '1213', '1205']);

/**
 * What the driver adapter reported under Prisma's error: raw queries fail with P2010 and carry
 * it in `meta.driverAdapterError.cause` (`kind`, the database's `originalCode`).
 */
function driverCause(error: unknown): { kind?: unknown; originalCode?: unknown } | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const meta = (error as { meta?: { driverAdapterError?: { cause?: unknown } } }).meta;
  const cause = meta?.driverAdapterError?.cause;
  return cause !== null && typeof cause === 'object'
    ? (cause as { kind?: unknown; originalCode?: unknown })
    : undefined;
}

/**
 * The history stores write through the transaction client's raw queries: `query(sql, params)`
 * resolves `{ rows }` as a pg client does (PostgreSQL store), `query({ sql }, values)` resolves
 * `[rows, fields]` as a mysql2 connection does (MySQL store).
 */
function queryableOf(client: PrismaClientLike): {
  query(text: string | { sql: string }, params?: unknown[]): Promise<unknown>;
} {
  return {
    query: async (text, params = []) => {
      const rows = await client.$queryRawUnsafe(typeof text === 'string' ? text : text.sql, ...params);
      return typeof text === 'string' ? { rows } : [rows, undefined];
    },
  };
}

/**
 * The built-in adapter for Prisma (7, with a driver adapter such as `@prisma/adapter-pg`): the
 * transaction client of an interactive `$transaction(async (tx) => …)` is joined; given the root
 * client, the library opens `$transaction()` and runs the call with `tx` in place of the client
 * (argument and `currentSession()`). History goes through the transaction's raw queries, so the
 * built-in PostgreSQL and MySQL stores write into the same transaction. P2002 and a raw query's
 * unique violation are conflicts; P2034, write conflicts, serialization failures and deadlocks
 * are retried; Prisma's transaction id is the txId.
 *
 * ```ts
 * await prisma.$transaction((tx) => orders.update(order, tx)); // joins
 * await orders.update(order, prisma);                          // the library's transaction
 * ```
 */
export const prismaAdapter: TransactionAdapter<PrismaClientLike> = Object.freeze({
  name: 'prisma',
  matches: isPrisma,
  isActive: inTransaction,
  run: <R>(client: PrismaClientLike, work: (transaction?: unknown) => Promise<R>): Promise<R> =>
    client.$transaction((tx) => work(tx)),
  isConflict: (error: unknown) =>
    prismaCode(error) === 'P2002' || driverCause(error)?.kind === 'UniqueConstraintViolation',
  isTransient: (error: unknown) => {
    const cause = driverCause(error);
    return (
      prismaCode(error) === 'P2034' ||
      cause?.kind === 'TransactionWriteConflict' ||
      RETRYABLE_CODES.has(String(cause?.originalCode))
    );
  },
  transactionId: (client: PrismaClientLike) => {
    const txId = scopeOf(client)?.txId;
    return typeof txId === 'string' ? txId : undefined;
  },
  connection: (client: PrismaClientLike) => (inTransaction(client) ? queryableOf(client) : undefined),
  join: <R>(client: PrismaClientLike, work: () => Promise<R>): Promise<R> =>
    joinWithSavepoint('prisma', client, (sql) => client.$executeRawUnsafe(sql), work),
});
