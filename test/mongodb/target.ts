import { randomBytes } from 'node:crypto';
import { type CommandStartedEvent, MongoClient, type MongoClientOptions } from 'mongodb';
import { startWireServer, type WireServer } from './wire-server.js';

/** Where the MongoDB tests run: `MONGODB_URL` (a real replica set) when set, else a scripted server. */
export interface MongoTarget {
  readonly url: string;
  /** The scripted server, or `undefined` against a real one. */
  readonly scripted: WireServer | undefined;
  close(): Promise<void>;
}

export const REAL_MONGODB_URL = process.env.MONGODB_URL;

export async function openTarget(): Promise<MongoTarget> {
  if (REAL_MONGODB_URL) return { url: REAL_MONGODB_URL, scripted: undefined, close: async () => {} };
  const server = await startWireServer();
  return { url: server.url, scripted: server, close: () => server.close() };
}

/** A database or collection name no other test file, project or process uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

const clientOptions: MongoClientOptions = { serverSelectionTimeoutMS: 5_000, connectTimeoutMS: 5_000 };

/** A client that records the commands it sends (command monitoring works against any server). */
export function recordingClient(url: string): { client: MongoClient; sent: CommandStartedEvent[] } {
  const client = new MongoClient(url, { ...clientOptions, monitorCommands: true });
  const sent: CommandStartedEvent[] = [];
  client.on('commandStarted', (event) => {
    if (!HANDSHAKE.has(event.commandName)) sent.push(event);
  });
  return { client, sent };
}

export function plainClient(url: string): MongoClient {
  return new MongoClient(url, clientOptions);
}

const HANDSHAKE = new Set(['hello', 'ismaster', 'isMaster', 'endSessions']);
