import type { TransactionAdapter } from './adapter.js';

/**
 * The adapters tried after the user's, in order. Each matches its driver's session
 * structurally; none imports a driver.
 */
export const builtInAdapters: readonly TransactionAdapter<unknown>[] = [];
