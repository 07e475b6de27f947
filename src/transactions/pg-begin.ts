/**
 * BEGIN sent with the first statement of a transaction, for node-postgres clients: no round trip
 * of its own.
 *
 * Armed at the start of a transaction the adapter owns, it waits for the first bytes node-postgres
 * writes on the client's socket, whoever writes them (the method's `client.query`, a nested call's
 * SAVEPOINT, the history INSERT with COMMIT), and puts BEGIN (and `SELECT pg_current_xact_id()`)
 * in front of them, in the same write and in the same unit of the protocol, so that a failing
 * BEGIN makes the server skip the statement instead of running it outside the transaction:
 * - before a simple query (`Q`), inside its text: `BEGIN; SELECT …; <text>` is one message, and
 *   PostgreSQL skips the rest of a simple query after a failing statement;
 * - before an extended query (`P`/`B`/…), as Parse/Bind/Execute messages without a Sync: the
 *   server skips everything up to the query's own Sync after a failure.
 * The replies to the prefix (ParseComplete, BindComplete, the id's row, two CommandCompletes) are
 * taken out of the connection's messages before node-postgres sees them, so the query in flight
 * sees exactly its own replies; an error in the prefix is left in, so that query fails with it.
 * An error position in a simple query is moved back by the prefix's length.
 */

/** The part of node-postgres's `Connection` the prefix needs. */
interface ConnectionLike {
  emit(event: string | symbol, ...args: unknown[]): boolean;
  stream?: StreamLike;
}

interface StreamLike {
  write(chunk: unknown, ...rest: unknown[]): boolean;
}

interface Message {
  readonly name?: string;
  readonly fields?: readonly unknown[];
  position?: string;
}

/** One transaction's BEGIN, waiting for the first statement or travelling with it. */
export interface DeferredBegin {
  /** Whether BEGIN has been written (with the first statement). */
  readonly sent: boolean;
  /** The id `SELECT pg_current_xact_id()` returned, once the prefix has been answered. */
  readonly transactionId: string | undefined;
  /** The error the server answered BEGIN (or the id's SELECT) with, if it did. */
  readonly failure: unknown;
  /** Resolves once the statement BEGIN travelled with has been answered (at once when BEGIN was not sent). */
  settled(): Promise<void>;
  /** Stops waiting for a first statement (BEGIN not sent yet stays unsent) and stops filtering replies. */
  disarm(): void;
}

/** Whether BEGIN can travel with the first statement on `client`: a JavaScript pg client whose socket and connection can be watched. */
export function canDeferBegin(client: object): boolean {
  const connection = (client as { connection?: Partial<ConnectionLike> }).connection;
  const stream = connection?.stream;
  // A client that was ended, released with destroy or lost its socket sends BEGIN now, and fails
  // with ConnectionLostError before the method runs, as every call on it should.
  const state = client as { _ending?: unknown; _queryable?: unknown };
  if (state._ending === true || state._queryable === false) return false;
  if ((stream as { destroyed?: unknown } | undefined)?.destroyed === true) return false;
  return (
    typeof connection?.emit === 'function' &&
    typeof stream?.write === 'function' &&
    !Object.hasOwn(stream, 'write') &&
    !Object.hasOwn(connection, 'emit') &&
    Object.isExtensible(stream) &&
    Object.isExtensible(connection)
  );
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, 'utf8');

/** Parse (unnamed, no parameter types), Bind (unnamed portal, no parameters, text results), Execute (all rows). */
function extendedStatement(text: string): Buffer {
  return Buffer.concat([
    message('P', Buffer.concat([cstring(''), cstring(text), Buffer.from([0, 0])])),
    message('B', Buffer.concat([cstring(''), cstring(''), Buffer.from([0, 0, 0, 0, 0, 0])])),
    message('E', Buffer.concat([cstring(''), Buffer.from([0, 0, 0, 0])])),
  ]);
}

const ID_SQL = 'SELECT pg_current_xact_id()::text';

/** The prefixes for one BEGIN statement, built once per adapter. */
export interface BeginPrefix {
  readonly simple: string;
  readonly extended: Buffer;
  readonly statements: number;
}

export function beginPrefix(begin: string, readsId: boolean): BeginPrefix {
  return Object.freeze({
    simple: readsId ? `${begin}; ${ID_SQL};\n` : `${begin};\n`,
    extended: readsId ? Buffer.concat([extendedStatement(begin), extendedStatement(ID_SQL)]) : extendedStatement(begin),
    statements: readsId ? 2 : 1,
  });
}

const Q = 0x51;
const TERMINATE = 0x58;

/** Arms `client` (see {@link canDeferBegin}) so that BEGIN travels with the next bytes written on it. */
export function deferBegin(client: object, prefix: BeginPrefix): DeferredBegin {
  const connection = (client as { connection: ConnectionLike }).connection;
  const stream = connection.stream as StreamLike;
  let sent = false;
  let transactionId: string | undefined;
  let failure: unknown;
  let answered = false;
  let waiters: (() => void)[] = [];
  let armed = true;
  let filtering = false;
  // Replies of the prefix still to come, and how far an error position in a simple query moves.
  let statementsLeft = prefix.statements;
  let shift = 0;

  const settle = (): void => {
    answered = true;
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  const stopFiltering = (): void => {
    if (!filtering) return;
    filtering = false;
    delete (connection as Partial<ConnectionLike>).emit;
  };
  const disarmWrite = (): void => {
    if (!armed) return;
    armed = false;
    delete (stream as Partial<StreamLike>).write;
  };

  function filteredEmit(this: ConnectionLike, event: string | symbol, ...args: unknown[]): boolean {
    const msg = args[0] as Message | undefined;
    const name = event === 'message' ? (msg?.name === 'error' ? 'errorMessage' : msg?.name) : event;
    if (statementsLeft > 0) {
      switch (name) {
        case 'parseComplete':
        case 'bindComplete':
        case 'rowDescription':
          return true;
        case 'dataRow':
          if (event !== 'message') {
            const id = msg?.fields?.[0];
            if (typeof id === 'string') transactionId = id;
          }
          return true;
        case 'commandComplete':
          if (event !== 'message') statementsLeft--;
          return true;
        case 'errorMessage':
          if (event !== 'message') {
            failure = msg;
            statementsLeft = 0;
          }
          break;
      }
    }
    if (name === 'errorMessage' && shift > 0 && msg !== undefined && typeof msg.position === 'string') {
      const position = Number(msg.position);
      if (position > shift) msg.position = String(position - shift);
    }
    const delivered = Object.getPrototypeOf(connection).emit.call(this, event, ...args) as boolean;
    if (event === 'readyForQuery' || event === 'end' || event === 'error') {
      stopFiltering();
      settle();
    }
    return delivered;
  }

  function writeWithBegin(this: StreamLike, chunk: unknown, ...rest: unknown[]): boolean {
    disarmWrite();
    const original = Object.getPrototypeOf(stream).write as StreamLike['write'];
    const bytes = Buffer.isBuffer(chunk) ? chunk : undefined;
    if (bytes === undefined || bytes.length === 0 || bytes[0] === TERMINATE) {
      // Not a statement (node-postgres writes Buffers): the transaction has not begun, nothing to begin.
      settle();
      return original.call(this, chunk, ...rest);
    }
    sent = true;
    filtering = true;
    (connection as { emit: ConnectionLike['emit'] }).emit = filteredEmit;
    if (bytes[0] === Q && bytes.length >= 5 && bytes.readInt32BE(1) + 1 === bytes.length) {
      const text = bytes.toString('utf8', 5, bytes.length - 1);
      shift = prefix.simple.length;
      return original.call(this, message('Q', cstring(prefix.simple + text)), ...rest);
    }
    return original.call(this, Buffer.concat([prefix.extended, bytes]), ...rest);
  }

  (stream as { write: StreamLike['write'] }).write = writeWithBegin;
  return {
    get sent() {
      return sent;
    },
    get transactionId() {
      return transactionId;
    },
    get failure() {
      return failure;
    },
    settled: () => (!sent || answered ? Promise.resolve() : new Promise<void>((resolve) => void waiters.push(resolve))),
    disarm: () => {
      disarmWrite();
      stopFiltering();
      settle();
    },
  };
}
