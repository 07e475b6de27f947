import { randomUUID } from 'node:crypto';
import { ambient, type TransactionFrame } from '../context.js';
import type { TransactionAdapter } from '../transactions/adapter.js';
import { adapterFor } from '../transactions/registry.js';
import { dropHooks } from './hooks.js';

/**
 * How a call relates to transactions. Decided in one place, `propagation()`:
 * - `none`: no session; the call runs without a transaction;
 * - `nested`: a decorated call running inside another on the same session shares its frame;
 * - `join`: the caller already began a transaction on the session; ours does not begin or commit;
 * - `own`: this call begins, commits or rolls back, and may retry.
 */
export type Propagation =
  | { readonly kind: 'none' }
  | { readonly kind: 'nested'; readonly frame: TransactionFrame }
  | { readonly kind: 'join'; readonly frame: TransactionFrame }
  | { readonly kind: 'own'; readonly adapter: TransactionAdapter<unknown> };

export function propagation(session: unknown): Propagation {
  if (session === undefined || session === null) return { kind: 'none' };
  const outer = ambient()?.tx;
  if (outer !== undefined && outer.session === session && !outer.closed) return { kind: 'nested', frame: outer };
  const adapter = adapterFor(session);
  if (adapter.isActive(session)) return { kind: 'join', frame: newFrame(session, adapter) };
  return { kind: 'own', adapter };
}

export function newFrame(session: unknown, adapter: TransactionAdapter<unknown>): TransactionFrame {
  const known = adapter.transactionId?.(session);
  if (known !== undefined || adapter.transactionIdArrivesLate !== true) {
    return { session, adapter, txId: known ?? randomUUID(), onRollback: [], closed: false };
  }
  // The id arrives with the reply to the transaction's first statement: fixed when first read.
  let txId: string | undefined;
  return {
    session,
    adapter,
    get txId(): string {
      txId ??= adapter.transactionId?.(session) ?? randomUUID();
      return txId;
    },
    onRollback: [],
    closed: false,
  };
}

/** The frame of a call nested in `parent`: same session, adapter and txId, its own undo list. */
export function childFrame(parent: TransactionFrame): TransactionFrame {
  const frame: TransactionFrame = {
    session: parent.session,
    adapter: parent.adapter,
    get txId(): string {
      return parent.txId;
    },
    onRollback: [],
    closed: false,
  };
  if (parent.captures !== undefined) frame.captures = parent.captures;
  return frame;
}

/**
 * Runs `work` in its turn on the unit's connection: after the nested calls started in `frame` so
 * far have settled, and before any started while it runs, which queue behind it. One connection
 * runs one statement at a time, and a savepoint's rollback undoes whatever ran on the connection
 * since the savepoint, so turns must not overlap. Nested calls take turns (see `nested`), and so
 * do the unit's own last statements (its history write).
 */
export function inTurn<R>(frame: TransactionFrame, work: () => Promise<R>): Promise<R> {
  const previous = frame.children;
  let running: Promise<R>;
  try {
    running = previous === undefined ? work() : previous.then(work);
  } catch (error) {
    running = Promise.reject(error);
  }
  frame.children = running.then(ignore, ignore);
  return running;
}

function ignore(): void {}

/**
 * Waits until every nested call started in `frame` has settled, including ones started while
 * waiting, then marks the frame closed: nothing of ours runs in the unit after it ends.
 */
export function endFrame(frame: TransactionFrame): Promise<void> | undefined {
  if (frame.children === undefined) {
    close(frame);
    return undefined;
  }
  return settleChildren(frame);
}

async function settleChildren(frame: TransactionFrame): Promise<void> {
  for (let children = frame.children; children !== undefined; children = frame.children) {
    await children;
    if (frame.children === children) break;
  }
  close(frame);
}

function close(frame: TransactionFrame): void {
  frame.closed = true;
  if (frame.holds !== undefined) for (const hold of frame.holds) hold.released = true;
}

/** Runs the undo actions of a rolled-back frame, newest first; one failing does not stop the rest. */
export function undo(frame: TransactionFrame): void {
  dropHooks(frame);
  for (const action of frame.onRollback.splice(0).reverse()) {
    try {
      action();
    } catch {
      // Undo actions only restore in-memory state; a failure there must not hide the real error.
    }
  }
}

/** Looks through `cause` links, since a nested call may have wrapped the driver's error. */
export function anyCause(error: unknown, test: (error: unknown) => boolean): boolean {
  let current = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    if (test(current)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** A short pause before retrying, growing with each attempt, with jitter so racing callers spread out. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * 5 * 2 ** Math.min(attempt, 6);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
