import type { Difference, HistoryEntry } from '../history/entry.js';

/**
 * ANSI styling that is a no-op when colour is off.
 *
 * ```ts
 * const paint = painter(true);
 * paint.green('+ added');
 * ```
 */
export interface Painter {
  yellow(text: string): string;
  green(text: string): string;
  red(text: string): string;
  cyan(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const codes = {
  yellow: [33, 39],
  green: [32, 39],
  red: [31, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
} as const;

/**
 * A painter for a stream: colour on a terminal, off otherwise, off when `NO_COLOR` is set
 * (non-empty) and on when `FORCE_COLOR` is set to anything but `0`.
 *
 * ```ts
 * const paint = painter(colourWanted(process.stdout, process.env));
 * ```
 */
export function painter(enabled: boolean): Painter {
  const style =
    (name: keyof typeof codes) =>
    (text: string): string =>
      enabled ? `\u001b[${codes[name][0]}m${text}\u001b[${codes[name][1]}m` : text;
  return {
    yellow: style('yellow'),
    green: style('green'),
    red: style('red'),
    cyan: style('cyan'),
    dim: style('dim'),
    bold: style('bold'),
  };
}

/**
 * Whether to colour output written to `stream`.
 *
 * ```ts
 * colourWanted(process.stdout, { NO_COLOR: '1' }); // false
 * ```
 */
export function colourWanted(stream: { isTTY?: boolean }, env: Readonly<Record<string, string | undefined>>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

/**
 * A value as the change lines show it: strings quoted, Dates as ISO text, objects as compact JSON.
 *
 * ```ts
 * showValue(new Date(0)); // '1970-01-01T00:00:00.000Z'
 * ```
 */
export function showValue(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return 'undefined';
  return JSON.stringify(value) ?? String(value);
}

/**
 * The header of one entry: version, operation and time, then actor, reason, transaction, metadata, hash.
 *
 * ```ts
 * formatHeader(entry, painter(false))[0]; // 'version 3 update 2026-01-01T00:00:00.000Z'
 * ```
 */
export function formatHeader(entry: HistoryEntry, paint: Painter): string[] {
  const op = entry.op === 'create' ? paint.green(entry.op) : entry.op === 'delete' ? paint.red(entry.op) : entry.op;
  const lines = [`${paint.yellow(`version ${entry.version}`)} ${op} ${paint.dim(entry.timestamp.toISOString())}`];
  const field = (label: string, value: string | undefined) => {
    if (value !== undefined) lines.push(`${`${label}:`.padEnd(10)}${value}`);
  };
  field('Actor', entry.actor);
  field('Reason', entry.reason);
  field('Tx', entry.txId);
  field('Metadata', entry.metadata === undefined ? undefined : showValue(entry.metadata));
  field('Schema', entry.schemaVersion === undefined ? undefined : String(entry.schemaVersion));
  field('Hash', entry.hash);
  return lines;
}

/**
 * One line per difference: `+` added, `-` removed, `~` changed, indented as in `git log -p`.
 *
 * ```ts
 * formatChanges(diff({ a: 1 }, { a: 2 }), painter(false)); // ['    ~ a: 1 → 2']
 * ```
 */
export function formatChanges(changes: readonly Difference[], paint: Painter): string[] {
  if (changes.length === 0) return [paint.dim('    (no field changed)')];
  return changes.map((change) => {
    switch (change.kind) {
      case 'add':
        return paint.green(`    + ${change.path}: ${showValue(change.after)}`);
      case 'remove':
        return paint.red(`    - ${change.path}: ${showValue(change.before)}`);
      default:
        return `    ${paint.cyan('~')} ${change.path}: ${paint.red(showValue(change.before))} → ${paint.green(showValue(change.after))}`;
    }
  });
}

/**
 * An entry with its changes as the `--json` output holds it.
 *
 * ```ts
 * JSON.stringify(jsonEntry(entry, changes));
 * ```
 */
export function jsonEntry(entry: HistoryEntry, changes: readonly Difference[]): Record<string, unknown> {
  return { ...entry, changes };
}
