import { InjectedFault } from './services.js';
import type { TargetName } from './targets.js';

/**
 * The session as the decorated call sees it, with its commit made to fail once: pg's
 * `query('COMMIT')`, better-sqlite3's `exec('COMMIT')`, mariadb's `commit()` reject or throw
 * without reaching the database, which then holds the open transaction the adapter must roll back.
 * Everything else is the session's own (methods bound to it), so the built-in adapter still matches.
 */
export function failingCommit<S extends object>(name: TargetName, session: S): S {
  let armed = true;
  const fail = (): boolean => {
    if (!armed) return false;
    armed = false;
    return true;
  };
  return new Proxy(session, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: unknown[]) => unknown).bind(target);
      if (name === 'postgres' && property === 'query') {
        return (text: unknown, ...rest: unknown[]) =>
          // COMMIT alone, or with the history INSERT the pg adapter sends before it in one query.
          isCommit(text) && fail() ? Promise.reject(new InjectedFault('commit')) : bound(text, ...rest);
      }
      if (name === 'sqlite' && property === 'exec') {
        return (sql: unknown) => {
          if (sql === 'COMMIT' && fail()) throw new InjectedFault('commit');
          return bound(sql);
        };
      }
      if (name === 'sqlite' && property === 'prepare') {
        // The adapter prepares COMMIT once per database and runs that statement.
        return (sql: unknown, ...rest: unknown[]) => {
          const statement = bound(sql, ...rest) as { run: (...args: unknown[]) => unknown };
          if (sql !== 'COMMIT') return statement;
          const run = statement.run.bind(statement);
          return Object.assign(Object.create(statement) as object, {
            run: (...args: unknown[]) => {
              if (fail()) throw new InjectedFault('commit');
              return run(...args);
            },
          });
        };
      }
      if (name === 'mariadb' && property === 'commit') {
        return Object.defineProperty(() => (fail() ? Promise.reject(new InjectedFault('commit')) : bound()), 'length', {
          value: 0,
        });
      }
      return bound;
    },
  });
}

function isCommit(query: unknown): boolean {
  // A string, or the query object the pg adapter sends the history INSERT and COMMIT as.
  const text = typeof query === 'string' ? query : (query as { text?: unknown } | null)?.text;
  return typeof text === 'string' && (text === 'COMMIT' || text.endsWith(';\nCOMMIT'));
}
