/**
 * Supplies the session of a decorated call that was given none and runs outside `runInSession`:
 * the transaction another library keeps in its own async context (nestjs-cls's
 * `TransactionHost`, say). Returns `undefined` when it has none for the running code.
 *
 * ```ts
 * const provider: SessionProvider = () => (txHost.isTransactionActive() ? txHost.tx : undefined);
 * ```
 */
export type SessionProvider = () => unknown;

// Shared through globalThis so that the ESM and CJS copies of the library see the same providers.
const PROVIDERS_KEY = Symbol.for('event-history:session-providers');
const holder = globalThis as { [PROVIDERS_KEY]?: SessionProvider[] };
const providers: SessionProvider[] = holder[PROVIDERS_KEY] ?? [];
holder[PROVIDERS_KEY] = providers;

/**
 * Registers a provider of ambient sessions, consulted after the call's own session argument and
 * `runInSession`; the most recently registered is asked first, and the first session wins.
 * Returns a function that removes the provider again. The NestJS module registers one for
 * `@nestjs-cls/transactional`.
 *
 * ```ts
 * const unregister = registerSessionProvider(() => (txHost.isTransactionActive() ? txHost.tx : undefined));
 * ```
 */
export function registerSessionProvider(provider: SessionProvider): () => void {
  providers.unshift(provider);
  return () => {
    const index = providers.indexOf(provider);
    if (index >= 0) providers.splice(index, 1);
  };
}

/** @internal The first session a registered provider supplies, if any. */
export function providedSession(): unknown {
  for (const provider of providers) {
    const session = provider();
    if (session !== undefined && session !== null) return session;
  }
  return undefined;
}
