// Profiling aid: `node --cpu-prof .tmp/bench/bench/profile-in-process.js` after `npm run bench`.
import { inProcessPair } from './in-process.js';

const pair = inProcessPair();
const calls = Number(process.argv[2] ?? 200_000);
for (let i = 0; i < calls / 10; i++) await pair.decorated();
const t0 = performance.now();
for (let i = 0; i < calls; i++) await pair.decorated();
const t1 = performance.now();
for (let i = 0; i < calls; i++) await pair.handWritten();
const t2 = performance.now();
console.log(
  `decorated ${(((t1 - t0) * 1000) / calls).toFixed(2)} µs, hand-written ${(((t2 - t1) * 1000) / calls).toFixed(2)} µs`,
);
