import { describe } from 'vitest';
import { REQUIRE_DATABASES } from '../integration/fixture.js';

/**
 * `describe` for a suite that needs a server: when `missing` says what is absent (`'DATABASE_URL is
 * not set'`), the suite is skipped under a name that says why, unless `REQUIRE_DATABASES=1`, under
 * which it runs (and its own set-up fails, naming what is missing).
 *
 * ```ts
 * suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set')('PostgreSQL specifics', () => { … });
 * ```
 */
export function suiteNeeding(missing: string | undefined): (name: string, body: () => void) => void {
  if (missing === undefined || REQUIRE_DATABASES) return (name, body) => describe(name, body);
  return (name, body) =>
    describe.skip(`${name}: skipped because ${missing} (REQUIRE_DATABASES=1 makes this fail)`, body);
}
