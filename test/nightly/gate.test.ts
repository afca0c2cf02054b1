/** The nightly gate's decision on paired per-query ranks: synthetic reports with known differences. */
import { describe, expect, it } from 'vitest';
import type { Rank, RobustProbeReport } from '../../src/eval/robust/index.js';
import { decideGate } from '../../src/nightly/gate.js';

/** a report whose queries are hits (rank 0) where `hit` says, clean and robust given separately */
function report(clean: { tr: boolean[]; ir: boolean[] }, robust: { tr: boolean[]; ir: boolean[] }): RobustProbeReport {
  const ranks = (h: boolean[]): Rank[] => h.map((x) => (x ? 0 : 5));
  const fig = (h: boolean[]) => ({ n: h.length, failed: 0, recall: { r1: { mean: (100 * h.filter(Boolean).length) / h.length, lo: 0, hi: 100 } } });
  return {
    clean: { tr: fig(clean.tr), ir: fig(clean.ir) },
    robust: { tr: fig(robust.tr), ir: fig(robust.ir) },
    attacks: [{ name: 'pgd' }],
    ranks: { clean: { tr: ranks(clean.tr), ir: ranks(clean.ir) }, robust: { tr: ranks(robust.tr), ir: ranks(robust.ir) } },
  } as unknown as RobustProbeReport;
}
const pattern = (n: number, every: number, offset = 0) => Array.from({ length: n }, (_, i) => (i + offset) % every === 0);
const T = { robustR1Tolerance: 3, cleanR1MaxDrop: 3 };
const BOOT = { seed: 0, resamples: 1000 };

describe('nightly gate (paired bootstrap)', () => {
  it('the same model passes: the paired change is exactly 0 with a zero-width interval', () => {
    const r = report({ tr: pattern(400, 2), ir: pattern(2000, 2) }, { tr: pattern(400, 4), ir: pattern(2000, 4) });
    const d = decideGate(r, r, T, BOOT);
    expect(d.pass).toBe(true);
    expect(d.paired!.robust).toMatchObject({ mean: 0, lo: 0, hi: 0 });
  });

  it('a candidate 10 points less robust on 400 images is rejected, its interval entirely below -tolerance', () => {
    const prod = report({ tr: pattern(400, 2), ir: pattern(2000, 2) }, { tr: pattern(400, 4), ir: pattern(2000, 4) });
    // 10 of every 100 robust hits of production become misses for the candidate (in both directions)
    const worse = (h: boolean[]) => h.map((x, i) => x && i % 100 >= 40);
    const cand = report({ tr: pattern(400, 2), ir: pattern(2000, 2) }, { tr: worse(pattern(400, 4)), ir: worse(pattern(2000, 4)) });
    const d = decideGate(cand, prod, T, BOOT);
    expect(d.pass).toBe(false);
    expect(d.paired!.robust.mean).toBeCloseTo(-10, 0);
    expect(d.paired!.robust.hi).toBeLessThan(-3);
    expect(d.reasons.join(' ')).toMatch(/reaches -3/);
    expect(d.paired!.clean.mean).toBe(0);
  });

  it('an interval wider than the tolerance that reaches -tolerance is inconclusive, not a drop: evaluate more images', () => {
    const prod = report({ tr: pattern(20, 2), ir: pattern(100, 2) }, { tr: pattern(20, 2), ir: pattern(100, 2) });
    const cand = report({ tr: pattern(20, 2), ir: pattern(100, 2) }, { tr: pattern(20, 2, 1), ir: pattern(100, 2, 1) });
    const d = decideGate(cand, prod, T, BOOT);
    expect(d.pass).toBe(false);
    expect(d.underpowered).toBe(true);
    expect(d.reasons.join(' ')).toMatch(/inconclusive.*evaluate more images/);
  });

  it('a wide interval entirely above -tolerance passes (the improvement is established) and is flagged underpowered', () => {
    const prod = report({ tr: pattern(20, 2), ir: pattern(100, 2) }, { tr: pattern(20, 4), ir: pattern(100, 4) });
    const cand = report({ tr: pattern(20, 2), ir: pattern(100, 2) }, { tr: pattern(20, 2), ir: pattern(100, 2) });
    const d = decideGate(cand, prod, T, BOOT);
    expect(d.paired!.robust.lo).toBeGreaterThan(0);
    expect(d.pass).toBe(true);
    expect(d.underpowered).toBe(true);
    expect(d.reasons.join(' ')).toMatch(/underpowered/);
  });

  it('no production model: the first candidate passes, saying so', () => {
    const r = report({ tr: [true], ir: [true] }, { tr: [true], ir: [true] });
    expect(decideGate(r, undefined, T, BOOT)).toMatchObject({ pass: true, reasons: [expect.stringMatching(/no production model/)] });
  });
});
