/** Percentile of an ascending array by nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** A ratio over rounds: the median of per-round ratios and their range. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly rounds: readonly number[];
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: percentile(sorted, 50),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
    rounds: values,
  };
}

export function formatSpread(s: Spread, digits = 3): string {
  return `${s.median.toFixed(digits)}× (min–max over ${s.rounds.length} rounds ${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** Latencies of one side in one round, in milliseconds. */
export interface Latencies {
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
  /** The fastest sample: the one least disturbed by other work on the machine. */
  readonly min?: number;
  /** CPU time this process spent per call (user + system), in microseconds, when measured. */
  readonly cpuUs?: number;
}

export function latencies(samples: number[], cpuUs?: number): Latencies {
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), count: samples.length, cpuUs };
}

/**
 * Runs `op` `total` times spread over `concurrency` workers, each worker running its calls one after
 * the other, and returns the latency of each call.
 */
export async function timeCalls(
  op: (worker: number, call: number) => Promise<unknown>,
  total: number,
  concurrency: number,
): Promise<Latencies> {
  const samples: number[] = [];
  const perWorker = Math.ceil(total / concurrency);
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let call = 0; call < perWorker; call++) {
        const start = performance.now();
        await op(worker, call);
        samples.push(performance.now() - start);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return latencies(samples, (used.user + used.system) / samples.length);
}

/** Two sides measured in alternating order, round after round, in the same process. */
export interface PairResult {
  readonly a: Latencies[];
  readonly b: Latencies[];
  /** Per-round p50(a) / p50(b). */
  readonly p50Ratio: Spread;
  /** Per-round p99(a) / p99(b). */
  readonly p99Ratio: Spread;
}

export async function alternate(
  rounds: number,
  a: () => Promise<Latencies>,
  b: () => Promise<Latencies>,
): Promise<PairResult> {
  const as: Latencies[] = [];
  const bs: Latencies[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      as.push(await a());
      bs.push(await b());
    } else {
      bs.push(await b());
      as.push(await a());
    }
  }
  return {
    a: as,
    b: bs,
    p50Ratio: spread(as.map((x, i) => x.p50 / (bs[i]?.p50 ?? Number.NaN))),
    p99Ratio: spread(as.map((x, i) => x.p99 / (bs[i]?.p99 ?? Number.NaN))),
  };
}

/**
 * Both sides in every round, call by call: each worker alternates a call of `a` with a call of `b`
 * (which goes first alternates too), so load from elsewhere on the machine falls on both sides
 * alike, however fast it comes and goes. The per-round ratio compares the round's p50s. At
 * concurrency 1 the Node CPU of each call is measured too (calls overlap at higher concurrency, so
 * there it cannot be told apart).
 */
export async function interleave(
  rounds: number,
  total: number,
  concurrency: number,
  a: (worker: number) => Promise<unknown>,
  b: (worker: number) => Promise<unknown>,
): Promise<PairResult> {
  const as: Latencies[] = [];
  const bs: Latencies[] = [];
  const perWorker = Math.ceil(total / concurrency);
  const measureCpu = concurrency === 1;
  for (let round = 0; round < rounds; round++) {
    const samples: [number[], number[]] = [[], []];
    const cpuUs = [0, 0];
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        for (let call = 0; call < perWorker; call++) {
          const order = (call + worker + round) % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const);
          for (const side of order) {
            const cpu = measureCpu ? process.cpuUsage() : undefined;
            const start = performance.now();
            await (side === 0 ? a : b)(worker);
            samples[side].push(performance.now() - start);
            if (cpu !== undefined) {
              const used = process.cpuUsage(cpu);
              cpuUs[side] = (cpuUs[side] ?? 0) + used.user + used.system;
            }
          }
        }
      }),
    );
    const [sa, sb] = samples;
    as.push(latencies(sa, measureCpu ? (cpuUs[0] ?? 0) / sa.length : undefined));
    bs.push(latencies(sb, measureCpu ? (cpuUs[1] ?? 0) / sb.length : undefined));
  }
  return {
    a: as,
    b: bs,
    p50Ratio: spread(as.map((x, i) => x.p50 / (bs[i]?.p50 ?? Number.NaN))),
    p99Ratio: spread(as.map((x, i) => x.p99 / (bs[i]?.p99 ?? Number.NaN))),
  };
}

export function medianOf(results: readonly Latencies[], key: 'p50' | 'p99' | 'cpuUs'): number {
  return median(results.map((r) => r[key] ?? Number.NaN));
}

/** Milliseconds as microseconds, for tables. */
export function us(ms: number, digits = 1): string {
  return (ms * 1000).toFixed(digits);
}
