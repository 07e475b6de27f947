import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Bench } from 'tinybench';
import { takeSnapshot } from '../src/index.js';
import { inProcessPair } from './in-process.js';
import { asyncCallCost, promisesPerCall } from './promises.js';
import { alternate, type Latencies, type PairResult, type Spread, spread } from './stats.js';

/**
 * In-process pair: a decorated save + update against the same work by hand, memory transaction.
 * Each sample is the mean of a batch of calls (a single call is too short for the clock), so p50 and
 * p99 are over batches.
 */
export async function inProcessComparison(
  rounds: number,
  batches: number,
  batchSize: number,
): Promise<{
  result: PairResult;
  overheadUs: Spread;
  fastestOverheadUs: Spread;
  fastestRatio: Spread;
  promises: { decorated: number; hand: number };
  asyncCall: { withoutAlsUs: number; withAlsUs: number };
}> {
  const pair = inProcessPair();
  const run = (fn: () => Promise<void>) => async (): Promise<Latencies> => {
    const samples: number[] = [];
    for (let b = 0; b < batches; b++) {
      const start = performance.now();
      for (let i = 0; i < batchSize; i++) await fn();
      samples.push((performance.now() - start) / batchSize);
    }
    samples.sort((x, y) => x - y);
    return {
      min: samples[0] as number,
      p50: samples[Math.floor(samples.length / 2)] as number,
      p99: samples[Math.ceil(samples.length * 0.99) - 1] as number,
      count: batches * batchSize,
    };
  };
  await run(pair.handWritten)();
  await run(pair.decorated)();
  const result = await alternate(rounds, run(pair.decorated), run(pair.handWritten));
  // Each pair call is two decorated calls (save, then update): the overhead per call is half the difference.
  const overheadUs = spread(result.a.map((d, i) => ((d.p50 - (result.b[i]?.p50 ?? Number.NaN)) * 1000) / 2));
  // The same from each round's fastest batch of each side: far less sensitive to other load on the machine.
  const fastestOverheadUs = spread(
    result.a.map((d, i) => (((d.min ?? Number.NaN) - (result.b[i]?.min ?? Number.NaN)) * 1000) / 2),
  );
  const fastestRatio = spread(result.a.map((d, i) => (d.min ?? Number.NaN) / (result.b[i]?.min ?? Number.NaN)));
  const promises = await promisesPerCall(pair, Math.min(1000, batches * batchSize));
  const asyncCall = asyncCallCost(batches * batchSize * 10);
  return { result, overheadUs, fastestOverheadUs, fastestRatio, promises, asyncCall };
}

export interface SnapshotRow {
  readonly size: string;
  readonly bytes: number;
  readonly snapshotUs: number;
  readonly structuredCloneUs: number;
  readonly ratio: number;
}

/** A plain order whose JSON is about `bytes` long. */
function orderOfSize(bytes: number): Record<string, unknown> {
  const line = { sku: 'sku-000000', qty: 1, price: 12.5, note: 'gift wrap', at: new Date(0) };
  const lineBytes = JSON.stringify(line).length + 1;
  const lines = Array.from({ length: Math.max(1, Math.round((bytes - 120) / lineBytes)) }, (_, i) => ({
    ...line,
    sku: `sku-${String(i).padStart(6, '0')}`,
    at: new Date(i),
  }));
  return { id: 'o1', customer: 'ACME Corporation', total: 120, version: 3, timestamp: new Date(), lines };
}

/** takeSnapshot on entities of 1 KB, 100 KB and 1 MB, against structuredClone of the same entity. */
export async function snapshotCosts(smoke: boolean): Promise<SnapshotRow[]> {
  const rows: SnapshotRow[] = [];
  for (const [size, bytes] of [
    ['1 KB', 1024],
    ['100 KB', 100 * 1024],
    ['1 MB', 1024 * 1024],
  ] as const) {
    const entity = orderOfSize(bytes);
    const time = smoke ? 20 : bytes > 100_000 ? 1500 : 600;
    const bench = new Bench({ time, warmupTime: smoke ? 5 : 200, iterations: smoke ? 3 : 20 });
    bench.add('takeSnapshot', () => {
      takeSnapshot(entity);
    });
    bench.add('structuredClone', () => {
      structuredClone(entity);
    });
    await bench.run();
    const p50 = (name: string): number => {
      const result = bench.tasks.find((t) => t.name === name)?.result;
      const latency = result && 'latency' in result ? result.latency : undefined;
      if (latency === undefined) throw new Error(`benchmark ${name} produced no result`);
      return latency.p50 ?? latency.mean;
    };
    const snapshotMs = p50('takeSnapshot');
    const cloneMs = p50('structuredClone');
    rows.push({
      size,
      bytes: JSON.stringify(entity).length,
      snapshotUs: snapshotMs * 1000,
      structuredCloneUs: cloneMs * 1000,
      ratio: snapshotMs / cloneMs,
    });
  }
  return rows;
}

export interface MemoryResult {
  readonly calls: readonly [number, number];
  readonly decoratedBytes: readonly [number, number];
  readonly handWrittenBytes: readonly [number, number];
}

function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  // Without --expose-gc on the command line: the flag can still be set at run time for a new context.
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap in use (after a full collection) after `few` and after `many` decorated calls, and the same by hand. */
export async function memoryGrowth(few: number, many: number): Promise<MemoryResult> {
  const gc = collector();
  const heapAfter = async (fn: () => Promise<void>, calls: number, done: number): Promise<number> => {
    for (let i = done; i < calls; i++) await fn();
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const measure = async (fn: () => Promise<void>): Promise<[number, number]> => {
    const atFew = await heapAfter(fn, few / 2, 0); // each pair call is a save and an update
    const atMany = await heapAfter(fn, many / 2, few / 2);
    return [atFew, atMany];
  };
  const pair = inProcessPair();
  const handWrittenBytes = await measure(pair.handWritten);
  const decoratedBytes = await measure(pair.decorated);
  return { calls: [few, many], decoratedBytes, handWrittenBytes };
}
