// SQLSTATE class 08 (connection exception) and 57P01..57P03 (the server shut the session down,
// e.g. pg_terminate_backend).
const PG_STATES = /^(08[0-9A-Z]{3}|57P0[123])$/;
// 1927 ER_CONNECTION_KILLED (MariaDB KILL CONNECTION), 2006 server gone away, 2013 lost during query.
const MYSQL_ERRNOS = new Set([1927, 2006, 2013]);
const NODE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CONNECTION_KILLED',
  'ER_SOCKET_UNEXPECTED_CLOSE',
  'ER_CMD_CONNECTION_CLOSED',
  'ER_CONNECTION_ALREADY_CLOSED',
  'ER_CLOSING_POOL',
]);
// Drivers that report a dead or closed connection with a message only (pg, mysql2, better-sqlite3).
const MESSAGES =
  /Connection terminated|not queryable|Client was closed|connection is in closed state|database connection is not open|Connection lost|This socket has been ended/i;

/**
 * @internal Whether `error` says the session's connection is gone or closed, for any of the
 * supported drivers; read from the error's own fields, so no driver is imported.
 */
export function isConnectionLost(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const { code, errno, message, fatal } = error as {
    code?: unknown;
    errno?: unknown;
    message?: unknown;
    fatal?: unknown;
  };
  if (typeof code === 'string' && (PG_STATES.test(code) || NODE_CODES.has(code))) return true;
  if (typeof errno === 'number' && MYSQL_ERRNOS.has(errno)) return true;
  // mariadb marks errors after which the connection cannot be used as fatal.
  if (fatal === true && typeof (error as { sqlState?: unknown }).sqlState === 'string') return true;
  return typeof message === 'string' && MESSAGES.test(message);
}
