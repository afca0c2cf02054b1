import { describe, expect, it } from 'vitest';
import { bootstrapMeanCI, bootstrapPairedDiffCI, quantileSorted } from '../../src/eval/bootstrap.js';
import { Rng } from '../../src/util/rng.js';

function hits(n: number, p: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => (rng.next() < p ? 1 : 0));
}

describe('bootstrapMeanCI', () => {
  it('contains the mean, is deterministic by seed, and has a sensible width', () => {
    const h = hits(1000, 0.4, 1);
    const mean = h.reduce((a, b) => a + b, 0) / h.length;
    const ci = bootstrapMeanCI(h, { seed: 7, scale: 100 });
    expect(ci.mean).toBeCloseTo(100 * mean, 10);
    expect(ci.lo).toBeLessThan(ci.mean);
    expect(ci.hi).toBeGreaterThan(ci.mean);
    expect(ci).toMatchObject({ confidence: 0.95, resamples: 1000, n: 1000, method: 'percentile-bootstrap', seed: 7 });
    // normal approximation: half-width ~ 1.96 * sqrt(p(1-p)/n) ~ 3.0 points
    const half = (ci.hi - ci.lo) / 2;
    expect(half).toBeGreaterThan(2.3);
    expect(half).toBeLessThan(3.8);

    expect(bootstrapMeanCI(h, { seed: 7, scale: 100 })).toEqual(ci);
    const other = bootstrapMeanCI(h, { seed: 8, scale: 100 });
    expect(other.lo === ci.lo && other.hi === ci.hi).toBe(false);
    // a caller's Rng gives the same stream as the same seed
    const viaRng = bootstrapMeanCI(h, { rng: new Rng(7), scale: 100 });
    expect([viaRng.lo, viaRng.hi]).toEqual([ci.lo, ci.hi]);
    expect(viaRng.seed).toBeUndefined();
  });

  it('narrows with more data and widens with confidence', () => {
    const small = bootstrapMeanCI(hits(100, 0.5, 2));
    const big = bootstrapMeanCI(hits(5000, 0.5, 2));
    expect(big.hi - big.lo).toBeLessThan(small.hi - small.lo);
    const h = hits(500, 0.3, 3);
    const c80 = bootstrapMeanCI(h, { confidence: 0.8 });
    const c99 = bootstrapMeanCI(h, { confidence: 0.99 });
    expect(c99.hi - c99.lo).toBeGreaterThan(c80.hi - c80.lo);
  });

  it('degenerate inputs: all hits or no hits give a zero-width interval at the mean', () => {
    expect(bootstrapMeanCI(new Uint8Array(50).fill(1))).toMatchObject({ mean: 1, lo: 1, hi: 1 });
    expect(bootstrapMeanCI(new Uint8Array(50))).toMatchObject({ mean: 0, lo: 0, hi: 0 });
  });

  it('rejects bad arguments', () => {
    expect(() => bootstrapMeanCI([])).toThrow(/no values/);
    expect(() => bootstrapMeanCI([1], { resamples: 0 })).toThrow(/resamples/);
    expect(() => bootstrapMeanCI([1], { confidence: 1 })).toThrow(/confidence/);
  });

  it('paired differences', () => {
    const a = hits(800, 0.6, 4);
    const b = Uint8Array.from(a, (x, i) => (i % 10 === 0 ? 0 : x)); // b loses ~6% of a's hits
    const d = bootstrapPairedDiffCI(a, b, { seed: 1, scale: 100 });
    expect(d.mean).toBeGreaterThan(0);
    expect(d.lo).toBeGreaterThan(0); // a significant, paired difference
    expect(d.lo).toBeLessThan(d.mean);
    expect(d.hi).toBeGreaterThan(d.mean);
    expect(() => bootstrapPairedDiffCI([1], [1, 0])).toThrow(/differ in length/);
  });
});

describe('quantileSorted', () => {
  it('interpolates linearly (type 7)', () => {
    expect(quantileSorted([1, 2, 3, 4], 0)).toBe(1);
    expect(quantileSorted([1, 2, 3, 4], 1)).toBe(4);
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([10], 0.3)).toBe(10);
  });
});
