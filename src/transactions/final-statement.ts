import { ambient } from '../context.js';
import { shared } from '../shared-state.js';

/**
 * A parameterized statement a history store hands to the transaction adapter instead of sending
 * it, so that it travels with the COMMIT (or the RELEASE SAVEPOINT of a joined call) in one round
 * trip. The values are sent as bind parameters, never inside the SQL text.
 *
 * ```ts
 * const statement: FinalStatement = { text: 'INSERT INTO "h" ("a", "n") VALUES ($1, $2::int)', values: ['x', '1'] };
 * ```
 */
export interface FinalStatement {
  readonly text: string;
  /**
   * The parameters in `$1 … $n` order: a string is sent in text format, a `Uint8Array` (a Node
   * `Buffer`) in binary format, `null` as SQL NULL.
   */
  readonly values: readonly (string | Uint8Array | null)[];
}

/** A statement handed over, with what its failure becomes for the caller. */
export interface PendingStatement {
  readonly statement: FinalStatement;
  readonly fail: (error: unknown) => unknown;
}

/**
 * One transaction (or savepoint) an adapter ends itself, which accepts final statements. `under`
 * is the enclosing call's frame when it was opened: only a write made at that same depth is the
 * last write of this level (a decorated call nested in the method without a level of its own is
 * not, since the outer method goes on writing after it).
 */
interface Level {
  readonly under: unknown;
  readonly statements: PendingStatement[];
  closed: boolean;
}

/** The history write of a call in progress (`writeLast`), with how its deferred failure is mapped. */
interface Window {
  readonly under: unknown;
  readonly fail: (error: unknown) => unknown;
  open: boolean;
}

const levels = shared('final-statement-levels', () => new WeakMap<object, Level[]>());
const windows = shared('final-statement-windows', () => new WeakMap<object, Window[]>());

function depth(): unknown {
  return ambient()?.tx;
}

/**
 * @internal Runs `save`, the history write of a decorated call running in a transaction on
 * `session`, with a window open on that session while its promise is pending: a store that finds
 * the window (see {@link finalStatementSink}) may hand its statements to the adapter, which sends
 * them with the COMMIT or RELEASE that ends the call and maps their failure through `fail`.
 * Whatever the store does, the writer stays the one that writes.
 */
export function writeLast(session: unknown, fail: (error: unknown) => unknown, save: () => unknown): Promise<unknown> {
  const level = session !== null && typeof session === 'object' ? levels.get(session)?.at(-1) : undefined;
  if (level === undefined || level.closed) {
    // No adapter accepts final statements on this session (every adapter but pg's): no window to
    // open, and no promise of our own (Promise.resolve hands a native promise back as it is).
    try {
      return Promise.resolve(save());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return inWindow(session as object, fail, save);
}

async function inWindow(session: object, fail: (error: unknown) => unknown, save: () => unknown): Promise<unknown> {
  const window: Window = { under: depth(), fail, open: true };
  let open = windows.get(session);
  if (open === undefined) {
    open = [];
    windows.set(session, open);
  }
  open.push(window);
  try {
    return await save();
  } finally {
    window.open = false;
    const index = open.indexOf(window);
    if (index >= 0) open.splice(index, 1);
  }
}

/**
 * Where a history store hands its statements for `connection`, or `undefined` when it must send
 * them itself: no decorated call is writing its history on `connection` right now, or the adapter
 * ends no transaction (or savepoint) of that call on it. Call the sink at once; statements arrive
 * in order and travel together.
 *
 * ```ts
 * const sink = finalStatementSink(client);
 * if (sink) sink({ text: insertSql, values }); else await client.query(insertSql, values);
 * ```
 */
export function finalStatementSink(connection: unknown): ((statement: FinalStatement) => void) | undefined {
  if (connection === null || typeof connection !== 'object') return undefined;
  const level = levels.get(connection)?.at(-1);
  const window = windows.get(connection)?.at(-1);
  if (level === undefined || window === undefined || level.closed || !window.open) return undefined;
  if (level.under !== window.under) return undefined;
  return (statement) => {
    if (level.closed || !window.open) {
      throw new Error('A final statement was handed over after the history write that could send it had ended.');
    }
    level.statements.push({ statement, fail: window.fail });
  };
}

/** @internal An adapter begins accepting final statements on `connection`, for the transaction or savepoint it ends. */
export function openLevel(connection: object): Level {
  const level: Level = { under: depth(), statements: [], closed: false };
  let stack = levels.get(connection);
  if (stack === undefined) {
    stack = [];
    levels.set(connection, stack);
  }
  stack.push(level);
  return level;
}

/** @internal Stops accepting; returns the statements handed over, in order. */
export function closeLevel(connection: object, level: Level): readonly PendingStatement[] {
  level.closed = true;
  const stack = levels.get(connection);
  const index = stack?.lastIndexOf(level) ?? -1;
  if (stack !== undefined && index >= 0) stack.splice(index, 1);
  if (stack?.length === 0) levels.delete(connection);
  return level.statements;
}

export type { Level as FinalStatementLevel };
