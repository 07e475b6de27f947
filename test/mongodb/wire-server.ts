import { createServer, type Server, type Socket } from 'node:net';
import { BSON, type Document } from 'mongodb';

/**
 * A scripted MongoDB server for tests: it speaks the wire protocol (the legacy OP_QUERY
 * handshake and OP_MSG) on 127.0.0.1, presents itself as the primary of a one-member replica
 * set with sessions and transactions, keeps a small in-memory store, records every command
 * the driver sends and fails commands on request.
 *
 * It implements what the tests need, not MongoDB: equality and comparison filters, `$set`,
 * `$unset`, `$inc` updates, unique indexes, and transactions that buffer their writes per
 * (lsid, txnNumber) until `commitTransaction`. Reads inside a transaction see committed data
 * plus the transaction's own writes (read committed, not a snapshot); a write to a document
 * another open transaction wrote fails at once with WriteConflict, as mongod does, and so does
 * a write outside a transaction (where mongod would wait for the lock instead).
 */

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;
const MAX_MESSAGE_BYTES = 48_000_000;
const MAX_RECORDED = 10_000;
const TRANSIENT = 'TransientTransactionError';

/** One command as the server received it. */
export interface RecordedCommand {
  readonly name: string;
  readonly db: string;
  /** The collection the command names, when its value is a string. */
  readonly collection: string | undefined;
  /** The session id (`lsid.id`) as hex, when the command carried one. */
  readonly lsid: string | undefined;
  readonly txnNumber: number | undefined;
  readonly startTransaction: boolean | undefined;
  readonly autocommit: boolean | undefined;
  readonly command: Document;
}

/** A failure to return instead of running a command, like mongod's `failCommand` fail point. */
export interface Fault {
  /** The command name to fail (`insert`, `update`, `commitTransaction`, …). */
  readonly command: string;
  /** Only commands on this collection. */
  readonly collection?: string;
  readonly code: number;
  readonly codeName?: string;
  readonly errmsg?: string;
  readonly errorLabels?: readonly string[];
  /** How many matching commands fail; default 1. */
  readonly times?: number;
}

class CommandError extends Error {
  constructor(
    readonly code: number,
    readonly codeName: string,
    message: string,
    readonly errorLabels: readonly string[] = [],
    readonly extra: Document = {},
  ) {
    super(message);
  }

  toReply(): Document {
    const reply: Document = { ok: 0, errmsg: this.message, code: this.code, codeName: this.codeName, ...this.extra };
    if (this.errorLabels.length > 0) reply.errorLabels = [...this.errorLabels];
    return reply;
  }
}

const writeConflict = (labels: readonly string[]) =>
  new CommandError(
    112,
    'WriteConflict',
    'Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.',
    labels,
  );

interface IndexSpec {
  readonly name: string;
  readonly key: Document;
  readonly unique: boolean;
}

interface StoredDocument {
  readonly doc: Document;
  readonly revision: number;
}

class CollectionState {
  readonly docs = new Map<string, StoredDocument>();
  readonly indexes: IndexSpec[] = [{ name: '_id_', key: { _id: 1 }, unique: true }];
}

interface Transaction {
  readonly lsid: string;
  readonly txnNumber: number;
  state: 'active' | 'committed' | 'aborted';
  readonly startRevision: number;
  /** Per namespace, per `_id` key: the new document, or `null` for a deletion. */
  readonly writes: Map<string, Map<string, Document | null>>;
}

type Handler = (db: string, command: Document, txn: Transaction | undefined) => Document;

/** Starts a scripted server; `await server.close()` when done. */
export async function startWireServer(options: { replicaSet?: string } = {}): Promise<WireServer> {
  const server = new WireServer(options.replicaSet ?? 'rs0');
  await server.listen();
  return server;
}

export class WireServer {
  /** Every command received, oldest first (the last 10 000). */
  readonly commands: RecordedCommand[] = [];
  readonly replicaSet: string;
  #server: Server | undefined;
  #address = '';
  readonly #sockets = new Set<Socket>();
  readonly #collections = new Map<string, CollectionState>();
  readonly #transactions = new Map<string, Transaction>();
  /** Which open transaction holds each written document, keyed by namespace and `_id` key. */
  readonly #locks = new Map<string, Transaction>();
  readonly #faults: { fault: Fault; remaining: number }[] = [];
  #revision = 0;
  #connectionId = 0;
  readonly #handlers: Record<string, Handler>;

  constructor(replicaSet: string) {
    this.replicaSet = replicaSet;
    this.#handlers = {
      hello: () => this.#hello(),
      ismaster: () => this.#hello(),
      isMaster: () => this.#hello(),
      ping: () => ({ ok: 1 }),
      buildInfo: () => ({ version: '7.0.0', versionArray: [7, 0, 0, 0], ok: 1 }),
      endSessions: (_db, command) => this.#endSessions(command),
      insert: (db, command, txn) => this.#insert(db, command, txn),
      update: (db, command, txn) => this.#update(db, command, txn),
      delete: (db, command, txn) => this.#delete(db, command, txn),
      find: (db, command, txn) => this.#find(db, command, txn),
      aggregate: (db, command, txn) => this.#aggregate(db, command, txn),
      count: (db, command, txn) => ({ n: this.#select(db, command.count, command.query ?? {}, txn).length, ok: 1 }),
      getMore: (db, command) => ({
        cursor: { nextBatch: [], id: BSON.Long.fromNumber(0), ns: `${db}.${command.collection}` },
        ok: 1,
      }),
      killCursors: (_db, command) => ({ cursorsKilled: command.cursors ?? [], ok: 1 }),
      createIndexes: (db, command) => this.#createIndexes(db, command),
      listIndexes: (db, command) => this.#listIndexes(db, command),
      listCollections: (db) => this.#listCollections(db),
      create: (db, command) => this.#create(db, command),
      drop: (db, command) => {
        this.#collections.delete(`${db}.${command.drop}`);
        return { ns: `${db}.${command.drop}`, nIndexesWas: 1, ok: 1 };
      },
      dropDatabase: (db) => {
        for (const ns of [...this.#collections.keys()]) if (ns.startsWith(`${db}.`)) this.#collections.delete(ns);
        return { dropped: db, ok: 1 };
      },
      commitTransaction: (_db, _command, txn) => this.#commit(txn),
      abortTransaction: (_db, _command, txn) => this.#abort(txn),
    };
  }

  /** `mongodb://127.0.0.1:<port>/?replicaSet=rs0`: the driver sees a one-member replica set. */
  get url(): string {
    return `mongodb://${this.#address}/?replicaSet=${this.replicaSet}`;
  }

  /** Fails the next matching command(s) with the given error instead of running them. */
  failNext(fault: Fault): void {
    this.#faults.push({ fault, remaining: fault.times ?? 1 });
  }

  /** The recorded commands named `name`, optionally only those on `collection`. */
  named(name: string, collection?: string): RecordedCommand[] {
    return this.commands.filter((c) => c.name === name && (collection === undefined || c.collection === collection));
  }

  clearRecorded(): void {
    this.commands.length = 0;
  }

  /** The committed documents of a collection, in insertion order. */
  documents(db: string, collection: string): Document[] {
    return [...(this.#collections.get(`${db}.${collection}`)?.docs.values() ?? [])].map((s) => clone(s.doc));
  }

  async listen(): Promise<void> {
    const server = createServer((socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the wire server has no TCP address');
    this.#address = `127.0.0.1:${address.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Each pass consumes one whole message, so the loop ends when the buffer runs out.
      while (pending.length >= 4) {
        const length = pending.readInt32LE(0);
        if (length < 16 || length > MAX_MESSAGE_BYTES) {
          socket.destroy();
          return;
        }
        if (pending.length < length) break;
        const message = pending.subarray(0, length);
        pending = pending.subarray(length);
        let reply: Buffer | undefined;
        try {
          reply = this.#respond(message);
        } catch {
          socket.destroy();
          return;
        }
        if (reply && !socket.destroyed) socket.write(reply);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#sockets.delete(socket));
  }

  #respond(message: Buffer): Buffer | undefined {
    const requestId = message.readInt32LE(4);
    const opCode = message.readInt32LE(12);
    if (opCode === OP_QUERY) {
      const { db, command } = parseQuery(message);
      return replyOpReply(requestId, this.#run(db, command));
    }
    if (opCode === OP_MSG) {
      const { command, moreToCome } = parseMsg(message);
      const reply = this.#run(String(command.$db ?? 'admin'), command);
      return moreToCome ? undefined : replyOpMsg(requestId, reply);
    }
    return undefined;
  }

  #run(db: string, command: Document): Document {
    const name = Object.keys(command)[0] ?? '';
    const record = recordOf(name, db, command);
    this.commands.push(record);
    if (this.commands.length > MAX_RECORDED) this.commands.shift();
    let txn: Transaction | undefined;
    try {
      txn = this.#transactionFor(record);
      this.#injectFault(record);
      const handler = this.#handlers[name];
      if (!handler) throw new CommandError(59, 'CommandNotFound', `no such command: '${name}'`);
      const reply = handler(db, command, txn);
      if (txn?.state === 'active' && Array.isArray(reply.writeErrors) && reply.writeErrors.length > 0) {
        this.#discard(txn, 'aborted');
      }
      return reply;
    } catch (error) {
      if (!(error instanceof CommandError)) {
        return {
          ok: 0,
          errmsg: error instanceof Error ? error.message : String(error),
          code: 1,
          codeName: 'InternalError',
        };
      }
      // As in mongod, a failed command ends the transaction it ran in; a failed commit may be retried.
      if (txn?.state === 'active' && name !== 'commitTransaction') this.#discard(txn, 'aborted');
      return error.toReply();
    }
  }

  #injectFault(record: RecordedCommand): void {
    const index = this.#faults.findIndex(
      ({ fault }) =>
        fault.command === record.name && (fault.collection === undefined || fault.collection === record.collection),
    );
    const entry = this.#faults[index];
    if (entry === undefined) return;
    entry.remaining -= 1;
    if (entry.remaining <= 0) this.#faults.splice(index, 1);
    const { fault } = entry;
    throw new CommandError(
      fault.code,
      fault.codeName ?? 'InjectedFault',
      fault.errmsg ?? `injected failure of ${record.name}`,
      fault.errorLabels,
    );
  }

  /** The transaction a command belongs to, started by it when it says `startTransaction`. */
  #transactionFor(record: RecordedCommand): Transaction | undefined {
    if (record.autocommit !== false || record.lsid === undefined || record.txnNumber === undefined) return undefined;
    const current = this.#transactions.get(record.lsid);
    if (record.startTransaction === true) {
      if (current && current.txnNumber >= record.txnNumber) {
        throw new CommandError(
          225,
          'TransactionTooOld',
          `txnNumber ${record.txnNumber} is not newer than ${current.txnNumber}`,
        );
      }
      if (current?.state === 'active') this.#discard(current, 'aborted');
      const txn: Transaction = {
        lsid: record.lsid,
        txnNumber: record.txnNumber,
        state: 'active',
        startRevision: this.#revision,
        writes: new Map(),
      };
      this.#transactions.set(record.lsid, txn);
      return txn;
    }
    const sameNumber = current?.txnNumber === record.txnNumber ? current : undefined;
    if (sameNumber?.state === 'active') return sameNumber;
    if (sameNumber?.state === 'committed' && record.name === 'commitTransaction') return sameNumber;
    const labels = record.name === 'commitTransaction' || record.name === 'abortTransaction' ? [] : [TRANSIENT];
    throw new CommandError(
      251,
      'NoSuchTransaction',
      `Transaction with { txnNumber: ${record.txnNumber} } has been aborted.`,
      labels,
    );
  }

  #commit(txn: Transaction | undefined): Document {
    if (!txn) throw new CommandError(251, 'NoSuchTransaction', 'no transaction to commit');
    if (txn.state === 'committed') return { ok: 1 };
    for (const [ns, writes] of txn.writes) {
      const state = this.#collection(ns);
      for (const [key, doc] of writes) {
        if (doc === null) state.docs.delete(key);
        else state.docs.set(key, { doc, revision: ++this.#revision });
      }
    }
    this.#discard(txn, 'committed');
    return { ok: 1 };
  }

  #abort(txn: Transaction | undefined): Document {
    if (txn?.state !== 'active') throw new CommandError(251, 'NoSuchTransaction', 'no transaction to abort');
    this.#discard(txn, 'aborted');
    return { ok: 1 };
  }

  #discard(txn: Transaction, state: 'committed' | 'aborted'): void {
    txn.state = state;
    for (const [ns, writes] of txn.writes) {
      for (const key of writes.keys()) {
        const lock = lockKey(ns, key);
        if (this.#locks.get(lock) === txn) this.#locks.delete(lock);
      }
    }
    if (state === 'aborted') txn.writes.clear();
  }

  #endSessions(command: Document): Document {
    for (const lsid of (command.endSessions as Document[] | undefined) ?? []) {
      const txn = this.#transactions.get(hexOf(lsid.id));
      if (txn?.state === 'active') this.#discard(txn, 'aborted');
      this.#transactions.delete(hexOf(lsid.id));
    }
    return { ok: 1 };
  }

  #hello(): Document {
    this.#connectionId += 1;
    return {
      helloOk: true,
      isWritablePrimary: true,
      ismaster: true,
      secondary: false,
      setName: this.replicaSet,
      setVersion: 1,
      electionId: new BSON.ObjectId('7fffffff0000000000000001'),
      hosts: [this.#address],
      primary: this.#address,
      me: this.#address,
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      maxWriteBatchSize: 100_000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId: this.#connectionId,
      minWireVersion: 0,
      maxWireVersion: 21,
      readOnly: false,
      ok: 1,
    };
  }

  #collection(ns: string): CollectionState {
    const existing = this.#collections.get(ns);
    if (existing) return existing;
    const state = new CollectionState();
    this.#collections.set(ns, state);
    return state;
  }

  /** The documents a command sees: committed ones, with the transaction's own writes laid over them. */
  #visible(ns: string, txn: Transaction | undefined): Map<string, Document> {
    const view = new Map<string, Document>();
    for (const [key, stored] of this.#collections.get(ns)?.docs ?? []) view.set(key, stored.doc);
    for (const [key, doc] of txn?.writes.get(ns) ?? []) {
      if (doc === null) view.delete(key);
      else view.set(key, doc);
    }
    return view;
  }

  #select(db: string, collection: unknown, filter: Document, txn: Transaction | undefined): Document[] {
    return [...this.#visible(`${db}.${String(collection)}`, txn).values()].filter((doc) => matches(doc, filter));
  }

  /** Writes one document (or deletes it, with `null`), enforcing unique indexes and transaction locks. */
  #write(ns: string, key: string, doc: Document | null, txn: Transaction | undefined): void {
    const state = this.#collection(ns);
    const holder = this.#locks.get(lockKey(ns, key));
    if (holder !== undefined && holder !== txn && holder.state === 'active') {
      throw writeConflict(txn ? [TRANSIENT] : []);
    }
    const committed = state.docs.get(key);
    if (txn && committed && committed.revision > txn.startRevision) throw writeConflict([TRANSIENT]);
    if (doc !== null) this.#checkUnique(ns, state, key, doc, txn);
    if (!txn) {
      if (doc === null) state.docs.delete(key);
      else state.docs.set(key, { doc, revision: ++this.#revision });
      return;
    }
    const writes = txn.writes.get(ns) ?? new Map<string, Document | null>();
    txn.writes.set(ns, writes);
    writes.set(key, doc);
    this.#locks.set(lockKey(ns, key), txn);
  }

  #checkUnique(ns: string, state: CollectionState, key: string, doc: Document, txn: Transaction | undefined): void {
    for (const index of state.indexes) {
      if (!index.unique) continue;
      const value = indexValue(index, doc);
      for (const [otherKey, other] of this.#visible(ns, txn)) {
        if (otherKey !== key && indexValue(index, other) === value) {
          const keyValue = Object.fromEntries(Object.keys(index.key).map((field) => [field, firstValue(doc, field)]));
          throw new CommandError(
            11000,
            'DuplicateKey',
            `E11000 duplicate key error collection: ${ns} index: ${index.name} dup key: ${BSON.EJSON.stringify(keyValue)}`,
            [],
            { keyPattern: index.key, keyValue },
          );
        }
      }
      // Another open transaction writing the same key: the later writer conflicts, as in mongod.
      for (const other of this.#transactions.values()) {
        if (other === txn || other.state !== 'active') continue;
        for (const [otherKey, pendingDoc] of other.writes.get(ns) ?? []) {
          if (pendingDoc !== null && otherKey !== key && indexValue(index, pendingDoc) === value) {
            throw writeConflict(txn ? [TRANSIENT] : []);
          }
        }
      }
    }
  }

  #insert(db: string, command: Document, txn: Transaction | undefined): Document {
    const ns = `${db}.${command.insert}`;
    const documents = (command.documents as Document[] | undefined) ?? [];
    const writeErrors: Document[] = [];
    let n = 0;
    for (const [index, original] of documents.entries()) {
      const doc = clone(original);
      if (doc._id === undefined) doc._id = new BSON.ObjectId();
      try {
        const key = keyOf(doc._id);
        if (this.#visible(ns, txn).has(key)) {
          throw new CommandError(
            11000,
            'DuplicateKey',
            `E11000 duplicate key error collection: ${ns} index: _id_ dup key: { _id: ${keyOf(doc._id)} }`,
            [],
            { keyPattern: { _id: 1 }, keyValue: { _id: doc._id } },
          );
        }
        this.#write(ns, key, doc, txn);
        n += 1;
      } catch (error) {
        if (!(error instanceof CommandError) || error.code !== 11000) throw error;
        writeErrors.push({ index, code: error.code, errmsg: error.message, ...error.extra });
        if (command.ordered !== false) break;
      }
    }
    return writeErrors.length > 0 ? { n, writeErrors, ok: 1 } : { n, ok: 1 };
  }

  #update(db: string, command: Document, txn: Transaction | undefined): Document {
    const ns = `${db}.${command.update}`;
    let n = 0;
    let nModified = 0;
    const upserted: Document[] = [];
    const writeErrors: Document[] = [];
    for (const [index, statement] of ((command.updates as Document[] | undefined) ?? []).entries()) {
      try {
        const filter = (statement.q as Document | undefined) ?? {};
        const targets = [...this.#visible(ns, txn)].filter(([, doc]) => matches(doc, filter));
        const chosen = statement.multi === true ? targets : targets.slice(0, 1);
        for (const [key, doc] of chosen) {
          const next = applyUpdate(doc, statement.u as Document, false);
          n += 1;
          if (BSON.EJSON.stringify(next) !== BSON.EJSON.stringify(doc)) {
            this.#write(ns, key, next, txn);
            nModified += 1;
          }
        }
        if (chosen.length === 0 && statement.upsert === true) {
          const seed = Object.fromEntries(Object.entries(filter).filter(([field]) => !field.startsWith('$')));
          const next = applyUpdate(seed, statement.u as Document, true);
          if (next._id === undefined) next._id = new BSON.ObjectId();
          this.#write(ns, keyOf(next._id), next, txn);
          upserted.push({ index, _id: next._id });
        }
      } catch (error) {
        if (!(error instanceof CommandError) || error.code !== 11000) throw error;
        writeErrors.push({ index, code: error.code, errmsg: error.message, ...error.extra });
        if (command.ordered !== false) break;
      }
    }
    const reply: Document = { n: n + upserted.length, nModified, ok: 1 };
    if (upserted.length > 0) reply.upserted = upserted;
    if (writeErrors.length > 0) reply.writeErrors = writeErrors;
    return reply;
  }

  #delete(db: string, command: Document, txn: Transaction | undefined): Document {
    const ns = `${db}.${command.delete}`;
    let n = 0;
    for (const statement of (command.deletes as Document[] | undefined) ?? []) {
      const targets = [...this.#visible(ns, txn)].filter(([, doc]) => matches(doc, (statement.q as Document) ?? {}));
      const chosen = statement.limit === 1 ? targets.slice(0, 1) : targets;
      for (const [key] of chosen) {
        this.#write(ns, key, null, txn);
        n += 1;
      }
    }
    return { n, ok: 1 };
  }

  #find(db: string, command: Document, txn: Transaction | undefined): Document {
    let docs = this.#select(db, command.find, (command.filter as Document | undefined) ?? {}, txn);
    if (command.sort) docs = sortDocuments(docs, command.sort as Document);
    if (typeof command.skip === 'number') docs = docs.slice(command.skip);
    if (typeof command.limit === 'number' && command.limit !== 0) docs = docs.slice(0, Math.abs(command.limit));
    if (command.projection) docs = docs.map((doc) => project(doc, command.projection as Document));
    return cursorReply(`${db}.${command.find}`, docs);
  }

  #aggregate(db: string, command: Document, txn: Transaction | undefined): Document {
    let docs = this.#select(db, command.aggregate, {}, txn);
    for (const stage of (command.pipeline as Document[] | undefined) ?? []) {
      const [operator] = Object.keys(stage);
      const argument = operator === undefined ? undefined : stage[operator];
      switch (operator) {
        case '$match':
          docs = docs.filter((doc) => matches(doc, argument as Document));
          break;
        case '$sort':
          docs = sortDocuments(docs, argument as Document);
          break;
        case '$skip':
          docs = docs.slice(Number(argument));
          break;
        case '$limit':
          docs = docs.slice(0, Number(argument));
          break;
        case '$project':
          docs = docs.map((doc) => project(doc, argument as Document));
          break;
        case '$count':
          docs = docs.length === 0 ? [] : [{ [String(argument)]: docs.length }];
          break;
        case '$group':
          docs = groupCount(docs, argument as Document);
          break;
        default:
          throw new CommandError(40324, 'Location40324', `Unrecognized pipeline stage name: '${operator}'`);
      }
    }
    return cursorReply(`${db}.${command.aggregate}`, docs);
  }

  #createIndexes(db: string, command: Document): Document {
    const ns = `${db}.${command.createIndexes}`;
    const created = !this.#collections.has(ns);
    const state = this.#collection(ns);
    const before = state.indexes.length;
    for (const spec of (command.indexes as Document[] | undefined) ?? []) {
      const index: IndexSpec = { name: String(spec.name), key: spec.key as Document, unique: spec.unique === true };
      const existing = state.indexes.find((i) => i.name === index.name || sameKey(i.key, index.key));
      if (existing) {
        if (existing.name !== index.name || !sameKey(existing.key, index.key)) {
          throw new CommandError(
            86,
            'IndexKeySpecsConflict',
            `An existing index has the same name or key: ${existing.name}`,
          );
        }
        if (existing.unique !== index.unique) {
          throw new CommandError(
            85,
            'IndexOptionsConflict',
            `Index already exists with different options: ${existing.name}`,
          );
        }
        continue;
      }
      if (index.unique) {
        const values = [...state.docs.values()].map((stored) => indexValue(index, stored.doc));
        if (new Set(values).size !== values.length) {
          throw new CommandError(
            11000,
            'DuplicateKey',
            `E11000 duplicate key error collection: ${ns} index: ${index.name}`,
          );
        }
      }
      state.indexes.push(index);
    }
    return {
      createdCollectionAutomatically: created,
      numIndexesBefore: before,
      numIndexesAfter: state.indexes.length,
      ok: 1,
    };
  }

  #listIndexes(db: string, command: Document): Document {
    const ns = `${db}.${command.listIndexes}`;
    const state = this.#collections.get(ns);
    if (!state) throw new CommandError(26, 'NamespaceNotFound', `ns does not exist: ${ns}`);
    const docs = state.indexes.map((index) =>
      index.unique && index.name !== '_id_'
        ? { v: 2, key: index.key, name: index.name, unique: true }
        : { v: 2, key: index.key, name: index.name },
    );
    return cursorReply(ns, docs);
  }

  #listCollections(db: string): Document {
    const docs = [...this.#collections.keys()]
      .filter((ns) => ns.startsWith(`${db}.`))
      .map((ns) => ({ name: ns.slice(db.length + 1), type: 'collection', options: {}, info: { readOnly: false } }));
    return cursorReply(`${db}.$cmd.listCollections`, docs);
  }

  #create(db: string, command: Document): Document {
    const ns = `${db}.${command.create}`;
    if (this.#collections.has(ns)) throw new CommandError(48, 'NamespaceExists', `Collection ${ns} already exists.`);
    this.#collection(ns);
    return { ok: 1 };
  }
}

function recordOf(name: string, db: string, command: Document): RecordedCommand {
  const lsid = command.lsid as Document | undefined;
  const txnNumber = command.txnNumber;
  return {
    name,
    db,
    collection: typeof command[name] === 'string' ? command[name] : undefined,
    lsid: lsid?.id === undefined ? undefined : hexOf(lsid.id),
    txnNumber: typeof txnNumber === 'number' ? txnNumber : txnNumber === undefined ? undefined : Number(txnNumber),
    startTransaction: typeof command.startTransaction === 'boolean' ? command.startTransaction : undefined,
    autocommit: typeof command.autocommit === 'boolean' ? command.autocommit : undefined,
    command,
  };
}

function hexOf(id: unknown): string {
  if (id instanceof BSON.Binary) return Buffer.from(id.buffer).toString('hex');
  return String(id);
}

function lockKey(ns: string, key: string): string {
  return `${ns}\u0000${key}`;
}

function keyOf(value: unknown): string {
  return BSON.EJSON.stringify({ v: value }, { relaxed: false });
}

function clone(doc: Document): Document {
  return BSON.deserialize(BSON.serialize(doc));
}

function parseQuery(message: Buffer): { db: string; command: Document } {
  let offset = 20;
  const end = message.indexOf(0, offset);
  const namespace = message.toString('utf8', offset, end);
  offset = end + 1 + 8;
  const size = message.readInt32LE(offset);
  const query = BSON.deserialize(message.subarray(offset, offset + size));
  const command = (query.$query as Document | undefined) ?? query;
  return { db: namespace.split('.')[0] ?? 'admin', command };
}

function parseMsg(message: Buffer): { command: Document; moreToCome: boolean } {
  const flags = message.readUInt32LE(16);
  const end = flags & 1 ? message.length - 4 : message.length;
  let command: Document = {};
  const sequences: [string, Document[]][] = [];
  let offset = 20;
  while (offset < end) {
    const kind = message[offset];
    offset += 1;
    const size = message.readInt32LE(offset);
    if (size <= 0) throw new Error('malformed OP_MSG section');
    if (kind === 0) {
      command = BSON.deserialize(message.subarray(offset, offset + size));
    } else {
      const nameEnd = message.indexOf(0, offset + 4);
      const field = message.toString('utf8', offset + 4, nameEnd);
      const documents: Document[] = [];
      let at = nameEnd + 1;
      while (at < offset + size) {
        const docSize = message.readInt32LE(at);
        if (docSize <= 0) throw new Error('malformed OP_MSG document sequence');
        documents.push(BSON.deserialize(message.subarray(at, at + docSize)));
        at += docSize;
      }
      sequences.push([field, documents]);
    }
    offset += size;
  }
  for (const [field, documents] of sequences) command[field] = documents;
  return { command, moreToCome: (flags & 2) !== 0 };
}

let nextRequestId = 0;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const buffer = Buffer.alloc(16);
  nextRequestId = (nextRequestId + 1) & 0x7fffffff;
  buffer.writeInt32LE(length, 0);
  buffer.writeInt32LE(nextRequestId, 4);
  buffer.writeInt32LE(responseTo, 8);
  buffer.writeInt32LE(opCode, 12);
  return buffer;
}

function replyOpMsg(responseTo: number, reply: Document): Buffer {
  const body = Buffer.from(BSON.serialize(reply));
  const prefix = Buffer.alloc(5);
  return Buffer.concat([header(16 + 5 + body.length, responseTo, OP_MSG), prefix, body]);
}

function replyOpReply(responseTo: number, reply: Document): Buffer {
  const body = Buffer.from(BSON.serialize(reply));
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(1, 16);
  return Buffer.concat([header(16 + 20 + body.length, responseTo, OP_REPLY), fields, body]);
}

function cursorReply(ns: string, docs: Document[]): Document {
  return { cursor: { firstBatch: docs, id: BSON.Long.fromNumber(0), ns }, ok: 1 };
}

/** The values a dotted path reaches, looking into arrays along the way. */
function valuesAt(doc: unknown, path: readonly string[]): unknown[] {
  if (path.length === 0) return [doc];
  if (Array.isArray(doc)) return doc.flatMap((item) => valuesAt(item, path));
  if (doc === null || typeof doc !== 'object' || doc instanceof Date) return [];
  const [head, ...rest] = path;
  const value = (doc as Document)[head as string];
  return value === undefined ? [] : valuesAt(value, rest);
}

function firstValue(doc: Document, field: string): unknown {
  return valuesAt(doc, field.split('.'))[0] ?? null;
}

function indexValue(index: IndexSpec, doc: Document): string {
  return keyOf(Object.keys(index.key).map((field) => firstValue(doc, field)));
}

const TYPE_RANK: readonly [(value: unknown) => boolean, number][] = [
  [(v) => v === null || v === undefined, 1],
  [(v) => typeof v === 'number' || typeof v === 'bigint', 2],
  [(v) => typeof v === 'string', 3],
  [(v) => v instanceof BSON.ObjectId, 7],
  [(v) => typeof v === 'boolean', 8],
  [(v) => v instanceof Date, 9],
  [(v) => Array.isArray(v), 5],
  [(v) => v instanceof BSON.Binary, 6],
  [(v) => typeof v === 'object', 4],
];

function rankOf(value: unknown): number {
  return TYPE_RANK.find(([test]) => test(value))?.[1] ?? 10;
}

function compare(a: unknown, b: unknown): number {
  const rank = rankOf(a) - rankOf(b);
  if (rank !== 0) return rank;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (a instanceof BSON.ObjectId && b instanceof BSON.ObjectId) return a.toHexString().localeCompare(b.toHexString());
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    return Number(a) - Number(b);
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (a === null || a === undefined) return 0;
  const left = keyOf(a);
  const right = keyOf(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

function equal(a: unknown, b: unknown): boolean {
  return rankOf(a) === rankOf(b) && compare(a, b) === 0;
}

function isOperatorObject(value: unknown): value is Document {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Date) return false;
  if ((value as { _bsontype?: unknown })._bsontype !== undefined) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => key.startsWith('$'));
}

function matches(doc: Document, filter: Document): boolean {
  return Object.entries(filter).every(([field, condition]) => {
    if (field === '$and') return (condition as Document[]).every((part) => matches(doc, part));
    if (field === '$or') return (condition as Document[]).some((part) => matches(doc, part));
    if (field === '$nor') return !(condition as Document[]).some((part) => matches(doc, part));
    if (field.startsWith('$')) throw new CommandError(2, 'BadValue', `unknown top level operator: ${field}`);
    const values = valuesAt(doc, field.split('.'));
    if (isOperatorObject(condition)) {
      return Object.entries(condition).every(([operator, operand]) => evaluate(values, operator, operand));
    }
    return evaluate(values, '$eq', condition);
  });
}

function evaluate(values: readonly unknown[], operator: string, operand: unknown): boolean {
  // An array field matches when the array itself or any element does.
  const candidates = values.flatMap((value) => (Array.isArray(value) ? [value, ...value] : [value]));
  const any = (predicate: (value: unknown) => boolean) =>
    candidates.length === 0 ? predicate(null) && operator !== '$exists' : candidates.some(predicate);
  switch (operator) {
    case '$eq':
      return any((value) => equal(value, operand));
    case '$ne':
      return !any((value) => equal(value, operand));
    case '$gt':
      return candidates.some((value) => rankOf(value) === rankOf(operand) && compare(value, operand) > 0);
    case '$gte':
      return candidates.some((value) => rankOf(value) === rankOf(operand) && compare(value, operand) >= 0);
    case '$lt':
      return candidates.some((value) => rankOf(value) === rankOf(operand) && compare(value, operand) < 0);
    case '$lte':
      return candidates.some((value) => rankOf(value) === rankOf(operand) && compare(value, operand) <= 0);
    case '$in':
      return (operand as unknown[]).some((option) => any((value) => equal(value, option)));
    case '$nin':
      return !(operand as unknown[]).some((option) => any((value) => equal(value, option)));
    case '$exists':
      return values.length > 0 === Boolean(operand);
    case '$regex':
      return candidates.some((value) => typeof value === 'string' && new RegExp(String(operand), 'u').test(value));
    default:
      throw new CommandError(2, 'BadValue', `unknown operator: ${operator}`);
  }
}

function sortDocuments(docs: readonly Document[], sort: Document): Document[] {
  const keys = Object.entries(sort) as [string, number][];
  return [...docs].sort((a, b) => {
    for (const [field, direction] of keys) {
      const order = compare(firstValue(a, field), firstValue(b, field));
      if (order !== 0) return direction < 0 ? -order : order;
    }
    return 0;
  });
}

function project(doc: Document, projection: Document): Document {
  const entries = Object.entries(projection);
  const excluding = entries.every(([field, value]) => field === '_id' || !value) && entries.some(([, value]) => !value);
  if (excluding) {
    const copy = { ...doc };
    for (const [field, value] of entries) if (!value) delete copy[field];
    return copy;
  }
  const copy: Document = {};
  if (projection._id !== 0 && projection._id !== false && doc._id !== undefined) copy._id = doc._id;
  for (const [field, value] of entries)
    if (value && field !== '_id' && doc[field] !== undefined) copy[field] = doc[field];
  return copy;
}

/** `$group` by a constant `_id` (what `countDocuments` sends) or by one field (`_id: '$field'`), with `{ $sum: 1 }` accumulators only. */
function groupCount(docs: readonly Document[], spec: Document): Document[] {
  const byField = typeof spec._id === 'string' && spec._id.startsWith('$') ? spec._id.slice(1) : undefined;
  const groups = new Map<string, { key: unknown; members: Document[] }>();
  for (const doc of docs) {
    const key = byField === undefined ? spec._id : (valuesAt(doc, byField.split('.'))[0] ?? null);
    const name = JSON.stringify(key) ?? 'undefined';
    const group = groups.get(name) ?? { key, members: [] as Document[] };
    group.members.push(doc);
    groups.set(name, group);
  }
  return [...groups.values()].map(({ key, members }) => {
    const group: Document = { _id: key };
    for (const [field, accumulator] of Object.entries(spec)) {
      if (field === '_id') continue;
      if (!isOperatorObject(accumulator) || accumulator.$sum !== 1) {
        throw new CommandError(2, 'BadValue', `only { $sum: 1 } accumulators are supported, got ${field}`);
      }
      group[field] = members.length;
    }
    return group;
  });
}

function applyUpdate(doc: Document, update: Document, inserting: boolean): Document {
  if (Array.isArray(update)) throw new CommandError(2, 'BadValue', 'pipeline updates are not supported');
  const next = clone(doc);
  const operators = Object.keys(update);
  if (!operators.some((key) => key.startsWith('$'))) {
    const replacement = clone(update);
    if (next._id !== undefined) replacement._id = next._id;
    return replacement;
  }
  for (const [operator, fields] of Object.entries(update)) {
    for (const [path, value] of Object.entries(fields as Document)) {
      switch (operator) {
        case '$set':
          setPath(next, path, value);
          break;
        case '$setOnInsert':
          if (inserting) setPath(next, path, value);
          break;
        case '$unset':
          setPath(next, path, undefined);
          break;
        case '$inc': {
          const current = valuesAt(next, path.split('.'))[0];
          setPath(next, path, (typeof current === 'number' ? current : 0) + Number(value));
          break;
        }
        default:
          throw new CommandError(9, 'FailedToParse', `Unknown modifier: ${operator}`);
      }
    }
  }
  return next;
}

function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split('.');
  let holder: Document = doc;
  for (const part of parts.slice(0, -1)) {
    const inner = holder[part];
    if (inner === null || typeof inner !== 'object') holder[part] = {};
    holder = holder[part] as Document;
  }
  const last = parts.at(-1) as string;
  if (value === undefined) delete holder[last];
  else holder[last] = value;
}

function sameKey(a: Document, b: Document): boolean {
  return keyOf(a) === keyOf(b);
}
