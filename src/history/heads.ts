import type { ChainHead } from './entry.js';

/** @internal A chain head as the SQL stores keep it, in `<table>_heads`. */
export interface HeadRow {
  entity_type: string;
  entity_id: string;
  version: number | string | bigint;
  hash: string;
  mac: string | null;
}

/** @internal The heads table's columns, in the order {@link headParams} yields values. */
export const HEAD_COLUMNS = ['entity_type', 'entity_id', 'version', 'hash', 'mac'] as const;

/** @internal Bind parameters of a head upsert, in {@link HEAD_COLUMNS} order. */
export function headParams(head: ChainHead): [string, string, number, string, string | null] {
  return [head.entityType, head.entityId, head.version, head.hash, head.mac ?? null];
}

/** @internal A heads row read back. */
export function rowToHead(row: HeadRow): ChainHead {
  const head = { entityType: row.entity_type, entityId: row.entity_id, version: Number(row.version), hash: row.hash };
  return row.mac === null || row.mac === undefined ? head : { ...head, mac: row.mac };
}

/**
 * @internal The heads table of a history table: `<name>_heads` in the same schema, shortened with a
 * hash of the full name when that would exceed the database's identifier limit.
 */
export function headsTableOf(table: string, maxLength: number): { schema: string | undefined; name: string } {
  const parts = table.split('.');
  const base = parts.at(-1) ?? table;
  const schema = parts.length === 2 ? parts[0] : undefined;
  const name = `${base}_heads`;
  if (name.length <= maxLength) return { schema, name };
  let hash = 0x811c9dc5;
  for (const char of table) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return { schema, name: `${base.slice(0, maxLength - 15)}_${hash.toString(16).padStart(8, '0')}_heads` };
}
