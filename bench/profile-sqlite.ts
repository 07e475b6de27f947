// Profiling aid: `node --cpu-prof .tmp/bench/bench/profile-sqlite.js` after `npm run bench`.
import { sqliteComparison } from './sqlite.js';
import { formatSpread } from './stats.js';

const result = await sqliteComparison(3, Number(process.argv[2] ?? 20_000));
console.log(`decorated / hand-written at p50, call by call: ${formatSpread(result.interleaved.p50Ratio)}`);
console.log(`decorated / hand-written at p50, round by round: ${formatSpread(result.roundByRound.p50Ratio)}`);
