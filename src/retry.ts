import { RetryExhaustedError, VersionConflictError } from './errors.js';

/**
 * Options of {@link retryOnConflict}.
 *
 * ```ts
 * const options: RetryOnConflictOptions = { attempts: 5, baseDelayMs: 10, maxDelayMs: 200 };
 * ```
 */
export interface RetryOnConflictOptions {
  /** How many times `fn` runs at most, the first included. At least 1. */
  readonly attempts: number;
  /** The pause after the first lost race; it doubles with each further one. Default 5 ms. */
  readonly baseDelayMs?: number;
  /** The longest pause between two attempts. Default 250 ms. */
  readonly maxDelayMs?: number;
  /** Called after each lost race that is retried, with the conflict and the attempt (1-based) that lost. */
  readonly onConflict?: (error: VersionConflictError, attempt: number) => void;
  /** Stops retrying when aborted: the pending pause ends and the abort reason is thrown. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `fn` until it does not lose a race: each `VersionConflictError` (also as the `cause` of
 * another error) waits a random time up to an exponentially growing bound ("full jitter", so
 * racing writers spread out) and runs `fn` again. `fn` must re-read the entity and re-apply the
 * change every time, since the copy it changed last time is stale. Any other error is thrown at
 * once; after `attempts` lost races a `RetryExhaustedError` carries the last conflict as `cause`.
 *
 * ```ts
 * await retryOnConflict(async () => {
 *   const order = await repo.load(id);          // re-read
 *   order.total += 10;                           // re-apply
 *   await orders.update(order, session);
 * }, { attempts: 5 });
 * ```
 */
export async function retryOnConflict<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOnConflictOptions,
): Promise<T> {
  const { attempts, baseDelayMs = 5, maxDelayMs = 250, onConflict, signal } = options;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new TypeError(`retryOnConflict needs attempts as an integer of at least 1, got ${String(attempts)}.`);
  }
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      const conflict = conflictIn(error);
      if (conflict === undefined) throw error;
      if (attempt >= attempts) throw new RetryExhaustedError(attempts, conflict);
      onConflict?.(conflict, attempt);
      await pause(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)), signal);
    }
  }
}

function conflictIn(error: unknown): VersionConflictError | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth++) {
    // A conflict from another copy of the library (ESM next to CJS) is matched by its stable code.
    if (current instanceof VersionConflictError || (current as { code?: unknown }).code === 'VERSION_CONFLICT') {
      return current as VersionConflictError;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
