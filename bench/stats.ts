/** Small statistics helpers for the benchmark. Percentiles interpolate linearly between ranks. */

export const round3 = (n: number): number => Math.round(n * 1000) / 1000;

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length);
  return {
    count: sorted.length,
    p50: round3(percentile(sorted, 50)),
    p90: round3(percentile(sorted, 90)),
    p99: round3(percentile(sorted, 99)),
    min: round3(sorted[0] ?? Number.NaN),
    max: round3(sorted[sorted.length - 1] ?? Number.NaN),
    mean: round3(mean),
  };
}

export function median(values: readonly number[]): number {
  return round3(percentile([...values].sort((a, b) => a - b), 50));
}

export const progress = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};
