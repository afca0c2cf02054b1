/**
 * Percentile bootstrap confidence intervals for means of per-query values (typically 0/1 hits from recall.ts).
 *
 * Method: draw `resamples` samples of size n with replacement from the n per-query values (a seeded Rng, so the
 * interval is reproducible), take each resample's mean, and report the (1-c)/2 and (1+c)/2 quantiles of those
 * means (linear interpolation between order statistics, "type 7"). Percentile bootstrap is simple and adequate
 * for recall over hundreds to thousands of queries; for very small n or recall near 0/100 the interval is
 * optimistic (it cannot extend beyond the observed extremes: all-0 or all-1 hits give a zero-width interval).
 *
 * Paired differences (model A vs model B on the same queries, or clean vs attacked) resample query indices
 * once for both vectors, which keeps the pairing and is much tighter than comparing two independent CIs.
 */
import { Rng } from '../util/rng.js';

export interface BootstrapOptions {
  /** number of resamples (default 1000) */
  resamples?: number;
  /** confidence level in (0, 1), default 0.95 */
  confidence?: number;
  /** seed for a fresh Rng (default 0); ignored when rng is given */
  seed?: number;
  rng?: Rng;
  /** multiply mean and bounds by this (e.g. 100 for percent); default 1 */
  scale?: number;
}

export interface ConfidenceInterval {
  mean: number;
  lo: number;
  hi: number;
  confidence: number;
  resamples: number;
  n: number;
  method: 'percentile-bootstrap';
  /** the seed used, when the interval was computed from a seed (not a caller's Rng) */
  seed?: number;
}

function resolve(opts: BootstrapOptions): { B: number; conf: number; rng: Rng; scale: number; seed?: number } {
  const B = opts.resamples ?? 1000;
  const conf = opts.confidence ?? 0.95;
  if (!Number.isInteger(B) || B < 1) throw new Error(`bootstrap: resamples must be a positive integer, got ${B}`);
  if (!(conf > 0 && conf < 1)) throw new Error(`bootstrap: confidence must be in (0, 1), got ${conf}`);
  const seed = opts.rng ? undefined : (opts.seed ?? 0);
  return { B, conf, rng: opts.rng ?? new Rng(seed!), scale: opts.scale ?? 1, seed };
}

/** type-7 quantile of sorted values */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

function interval(
  means: Float64Array,
  observed: number,
  n: number,
  r: { B: number; conf: number; scale: number; seed?: number },
): ConfidenceInterval {
  means.sort();
  const a = (1 - r.conf) / 2;
  const out: ConfidenceInterval = {
    mean: observed * r.scale,
    lo: quantileSorted(means, a) * r.scale,
    hi: quantileSorted(means, 1 - a) * r.scale,
    confidence: r.conf,
    resamples: r.B,
    n,
    method: 'percentile-bootstrap',
  };
  if (r.seed !== undefined) out.seed = r.seed;
  return out;
}

/** Percentile bootstrap CI of the mean of `values` (e.g. per-query 0/1 hits). */
export function bootstrapMeanCI(values: ArrayLike<number>, opts: BootstrapOptions = {}): ConfidenceInterval {
  const r = resolve(opts);
  const n = values.length;
  if (n === 0) throw new Error('bootstrap: no values');
  const v = Float64Array.from(values as ArrayLike<number>);
  const means = new Float64Array(r.B);
  for (let b = 0; b < r.B; b++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += v[r.rng.int(n)];
    means[b] = s / n;
  }
  return interval(means, mean(v), n, r);
}

/** Paired percentile bootstrap CI of mean(a) - mean(b) over the same queries (a[q] and b[q] pair up). */
export function bootstrapPairedDiffCI(a: ArrayLike<number>, b: ArrayLike<number>, opts: BootstrapOptions = {}): ConfidenceInterval {
  if (a.length !== b.length) throw new Error(`bootstrap: paired vectors differ in length (${a.length} vs ${b.length})`);
  const d = new Float64Array(a.length);
  for (let q = 0; q < a.length; q++) d[q] = a[q] - b[q];
  return bootstrapMeanCI(d, opts);
}

/**
 * Percentile bootstrap CI of the average of several groups' means, each group resampled on its own (stratified):
 * e.g. the mean of TR and IR R@1, whose queries are image and caption queries in different numbers. With paired
 * differences as values (candidate minus production per query), this is the paired interval of the difference.
 */
export function bootstrapStratifiedMeanCI(groups: readonly ArrayLike<number>[], opts: BootstrapOptions = {}): ConfidenceInterval {
  if (groups.length === 0 || groups.some((g) => g.length === 0)) throw new Error('bootstrap: every group needs values');
  const r = resolve(opts);
  const vs = groups.map((g) => Float64Array.from(g as ArrayLike<number>));
  const means = new Float64Array(r.B);
  for (let b = 0; b < r.B; b++) {
    let total = 0;
    for (const v of vs) {
      let s = 0;
      for (let j = 0; j < v.length; j++) s += v[r.rng.int(v.length)];
      total += s / v.length;
    }
    means[b] = total / vs.length;
  }
  const observed = vs.reduce((a, v) => a + mean(v), 0) / vs.length;
  return interval(means, observed, vs.reduce((a, v) => a + v.length, 0), r);
}
