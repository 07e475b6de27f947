/**
 * The differential tests of the SQL stores, run again by the reliability suite so that its report
 * (RELIABILITY.md) carries their figures: random entries written through every path of every
 * store, under every session setting that changes how text is read, must read back identical and
 * never run anything. `npm test` runs the same tests.
 */
import '../postgres/differential.test.js';
import { mariadbKit } from '../mysql/mariadb-fixture.js';
import { mysql2Kit } from '../mysql/mysql2-fixture.js';
import { runMysqlSafetySuite } from '../mysql/safety-suite.js';

runMysqlSafetySuite(mysql2Kit);
runMysqlSafetySuite(mariadbKit);
