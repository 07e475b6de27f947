import type { Target } from './targets.js';

/**
 * The invariants of one entity, read from the tables through another connection. Returns the
 * violations (empty when all hold): history versions run 1..n without gaps or duplicates; a
 * stored row's version equals its latest history version and that snapshot equals the row; a
 * missing row's history is empty or ends with a delete.
 */
export async function entityViolations(target: Target, entityType: string, id: string): Promise<string[]> {
  const { row, history } = await target.readEntity(entityType, id);
  const problems: string[] = [];
  history.forEach((entry, index) => {
    if (entry.version !== index + 1) problems.push(`${id}: history version ${entry.version} at position ${index + 1}`);
  });
  const latest = history.at(-1);
  if (row === undefined) {
    if (latest !== undefined && latest.op !== 'delete') {
      problems.push(`${id}: no stored row, but the latest history entry (v${latest.version}) is a ${latest.op}`);
    }
    return problems;
  }
  if (latest === undefined) return [...problems, `${id}: stored at v${row.version} without any history`];
  if (latest.op === 'delete') problems.push(`${id}: stored row exists after a delete entry`);
  if (row.version !== latest.version) {
    problems.push(`${id}: stored version ${row.version} but latest history version ${latest.version}`);
  }
  const snap = latest.snapshot;
  const snapTime = snap.timestamp instanceof Date ? snap.timestamp.getTime() : Number.NaN;
  if (
    snap.balance !== row.balance ||
    snap.note !== row.note ||
    snap.version !== row.version ||
    snapTime !== row.timestampMs
  ) {
    problems.push(`${id}: latest snapshot ${JSON.stringify(snap)} differs from the stored row ${JSON.stringify(row)}`);
  }
  return problems;
}

/** What the tables hold for one entity, to compare before and after a failed call. */
export async function entityState(target: Target, entityType: string, id: string): Promise<string> {
  const { row, history } = await target.readEntity(entityType, id);
  return JSON.stringify({ row: row ?? null, versions: history.map((h) => `${h.version}:${h.op}`) });
}
