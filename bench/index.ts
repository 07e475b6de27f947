import { Bench } from 'tinybench';
import { inProcessPair } from './in-process.js';

// `npm run bench` measures; `npm run bench -- --smoke` runs a few iterations only, so CI keeps
// the benchmark working without asserting anything about time.
const smoke = process.argv.includes('--smoke');
const rounds = smoke ? 1 : 5;

interface Sample {
  median: number;
  p99: number;
}

async function measure(name: string, fn: () => Promise<void>): Promise<Sample> {
  const bench = new Bench({ time: smoke ? 20 : 1000, warmupTime: smoke ? 5 : 200, iterations: smoke ? 10 : 64 });
  bench.add(name, fn);
  await bench.run();
  const latency =
    bench.tasks[0]?.result && 'latency' in bench.tasks[0].result ? bench.tasks[0].result.latency : undefined;
  if (!latency) throw new Error(`benchmark ${name} produced no result`);
  return { median: latency.p50 ?? latency.mean, p99: latency.p99 ?? latency.max };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const pair = inProcessPair();
  const decorated: number[] = [];
  const hand: number[] = [];
  // A discarded round lets the JIT settle; then alternate the two so drift in load affects both alike.
  if (!smoke) {
    await measure('warm-up hand-written', pair.handWritten);
    await measure('warm-up decorated', pair.decorated);
  }
  for (let round = 0; round < rounds; round++) {
    hand.push((await measure('hand-written', pair.handWritten)).median);
    decorated.push((await measure('decorated', pair.decorated)).median);
  }
  const handMs = median(hand);
  const decoratedMs = median(decorated);
  const ratios = decorated.map((d, i) => d / (hand[i] ?? Number.NaN));
  const overheadUs = ((decoratedMs - handMs) * 1000) / 2;
  console.log('In-process: save + update of one order, memory transaction, history write');
  console.table({
    'hand-written': { 'median µs per save+update': +(handMs * 1000).toFixed(2) },
    decorated: { 'median µs per save+update': +(decoratedMs * 1000).toFixed(2) },
  });
  console.log(
    `ratio decorated / hand-written: ${median(ratios).toFixed(3)} (rounds: ${ratios.map((r) => r.toFixed(3)).join(', ')})`,
  );
  console.log(`overhead per decorated call: ${overheadUs.toFixed(2)} µs`);
  if (smoke) console.log('(smoke pass: too few iterations for the figures to mean anything)');
}

await main();
