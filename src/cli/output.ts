import type { Difference } from '../history/entry.js';
import { CliError } from './connect.js';
import type { Painter } from './format.js';

/**
 * Where a command prints, and how: JSON or text, and the painter for text.
 *
 * ```ts
 * const output: Output = { json: false, out: (line) => console.log(line), paint: painter(false) };
 * ```
 */
export interface Output {
  readonly json: boolean;
  readonly out: (line: string) => void;
  readonly paint: Painter;
}

/**
 * A whole number from a command-line argument, else a usage error (exit 2) naming it.
 *
 * ```ts
 * positiveInteger('--limit', '20'); // 20
 * ```
 */
export function positiveInteger(what: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new CliError(2, `${what} must be a whole number, got ${JSON.stringify(text)}.`);
  }
  return value;
}

/**
 * The changes an entry's output shows: without the stamp fields (`version`, `timestamp`), which
 * every output already shows as the entry's own version and time. Text, `--json` and the viewer
 * all use it, so none shows a change another hides.
 *
 * ```ts
 * shownChanges(diff(before, after)).map((change) => change.path); // ['total']
 * ```
 */
export function shownChanges(changes: readonly Difference[]): Difference[] {
  return changes.filter((change) => change.path !== 'version' && change.path !== 'timestamp');
}
