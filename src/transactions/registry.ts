import { UnsupportedSessionError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { builtInAdapters } from './built-in.js';

interface Registry {
  readonly user: TransactionAdapter<unknown>[];
}

// Shared through globalThis so that the ESM and CJS copies of the library see one registry.
const REGISTRY_KEY = Symbol.for('event-history:adapters');
const holder = globalThis as { [REGISTRY_KEY]?: Registry };
const registry: Registry = holder[REGISTRY_KEY] ?? { user: [] };
holder[REGISTRY_KEY] = registry;

/**
 * Registers an adapter for a session type. User adapters are tried before the built-in ones,
 * most recently registered first. Returns a function that removes the adapter again.
 *
 * ```ts
 * const unregister = registerTransactionAdapter(myAdapter);
 * ```
 */
export function registerTransactionAdapter<S>(adapter: TransactionAdapter<S>): () => void {
  const entry = adapter as TransactionAdapter<unknown>;
  registry.user.unshift(entry);
  return () => {
    const index = registry.user.indexOf(entry);
    if (index >= 0) registry.user.splice(index, 1);
  };
}

/** The adapter that drives `session`, if any: user adapters first, then the built-in ones. */
export function findAdapter(session: unknown): TransactionAdapter<unknown> | undefined {
  for (const adapter of registry.user) if (adapter.matches(session)) return adapter;
  for (const adapter of builtInAdapters) if (adapter.matches(session)) return adapter;
  return undefined;
}

/**
 * @internal What a history store writes through for `session`: the driver connection behind an
 * ORM session (its adapter's `connection`), else the session itself.
 */
export async function connectionOf(session: unknown): Promise<unknown> {
  const adapter = session === null || session === undefined ? undefined : findAdapter(session);
  return adapter?.connection ? await adapter.connection(session) : session;
}

/** The adapter that drives `session`, or `UnsupportedSessionError`. */
export function adapterFor(session: unknown): TransactionAdapter<unknown> {
  const adapter = findAdapter(session);
  if (adapter) return adapter;
  throw new UnsupportedSessionError(describeType(session), [
    ...registry.user.map((a) => a.name),
    ...builtInAdapters.map((a) => a.name),
  ]);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'Object';
}
