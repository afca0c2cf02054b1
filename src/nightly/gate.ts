/**
 * The nightly gate: the candidate and the production model measured on the SAME held-out queries with the same
 * attack suite and seed (the one robust-recall runner over each model in memory), and compared PER QUERY.
 *
 * The figure is R@1 averaged over the two directions (image->text and text->image), clean and robust (a query
 * counts only if it is a hit clean and under every attack of its direction). The decision uses the paired
 * percentile-bootstrap interval of (candidate - production), image and caption queries resampled separately:
 * - robust: promote only if the interval's lower end lies above -robustR1Tolerance. The sample must be large enough
 *   that the interval is narrower than the tolerance (half-width <= tolerance), or a model no worse than
 *   production would be rejected by noise alone: a wider interval is reported as `underpowered`, and when it is
 *   what reaches -tolerance the reason says "inconclusive: evaluate more images" instead of "dropped";
 * - clean: reported the same way (paired interval); its lower end must lie above -cleanR1MaxDrop, a guard against
 *   a collapsed model rather than a robustness bar (adversarial fine-tuning costs some clean recall).
 */
import { bootstrapStratifiedMeanCI, type ConfidenceInterval } from '../eval/bootstrap.js';
import type { Rank, RobustProbeReport } from '../eval/robust/index.js';
import type { GateMetrics } from './state.js';

export interface GateThresholds {
  robustR1Tolerance: number;
  cleanR1MaxDrop: number;
}

export interface GateDecision {
  pass: boolean;
  reasons: string[];
  /** candidate - production, points, paired 95% intervals (absent without a production model) */
  paired?: { robust: ConfidenceInterval; clean: ConfidenceInterval };
  /** the robust interval's half-width exceeds the tolerance: the sample cannot tell a drop of that size from noise */
  underpowered?: boolean;
  thresholds: GateThresholds;
}

const round = (x: number) => Math.round(x * 100) / 100;
const hitsAt1 = (ranks: readonly Rank[]) => ranks.map((r) => (r !== null && r < 1 ? 1 : 0));

/** clean and robust R@1 of a gate report, each the mean of the two directions */
export function gateMetrics(r: RobustProbeReport): GateMetrics {
  const r1 = (d: { recall: Record<string, { mean: number }> } | undefined) => d?.recall.r1?.mean ?? 0;
  return {
    cleanR1: round((r1(r.clean.tr) + r1(r.clean.ir)) / 2),
    robustR1: round((r1(r.robust.tr ?? r.clean.tr) + r1(r.robust.ir ?? r.clean.ir)) / 2),
    robustOver: `worst case over ${r.attacks.map((a) => a.name).join(' + ') || 'nothing (no attack)'}`,
  };
}

function pairedDiff(cand: RobustProbeReport, prod: RobustProbeReport, kind: 'clean' | 'robust', boot: { seed: number; resamples: number }): ConfidenceInterval {
  const c = cand.ranks![kind];
  const p = prod.ranks![kind];
  const diff = (a: readonly Rank[], b: readonly Rank[]) => {
    if (a.length !== b.length) throw new Error(`gate: the two models were measured on different queries (${a.length} vs ${b.length})`);
    const ha = hitsAt1(a);
    const hb = hitsAt1(b);
    return ha.map((h, q) => h - hb[q]);
  };
  const ci = bootstrapStratifiedMeanCI([diff(c.tr, p.tr), diff(c.ir, p.ir)], { seed: boot.seed, resamples: boot.resamples, scale: 100 });
  return { ...ci, mean: round(ci.mean), lo: round(ci.lo), hi: round(ci.hi) };
}

export function decideGate(cand: RobustProbeReport, prod: RobustProbeReport | undefined, t: GateThresholds, boot: { seed: number; resamples: number }): GateDecision {
  const cm = gateMetrics(cand);
  if (!prod) return { pass: true, reasons: [`no production model to compare with: the candidate (clean R@1 ${cm.cleanR1}, robust R@1 ${cm.robustR1}) is the first`], thresholds: t };
  if (!cand.ranks || !prod.ranks) throw new Error('gate: both reports need per-query ranks (keepRanks)');
  const robust = pairedDiff(cand, prod, 'robust', boot);
  const clean = pairedDiff(cand, prod, 'clean', boot);
  const half = round((robust.hi - robust.lo) / 2);
  const pm = gateMetrics(prod);
  const reasons: string[] = [];
  const iv = (ci: ConfidenceInterval) => `${ci.mean >= 0 ? '+' : ''}${ci.mean} [${ci.lo}, ${ci.hi}]`;
  const underpowered = half > t.robustR1Tolerance;
  if (robust.lo <= -t.robustR1Tolerance) {
    reasons.push(
      underpowered
        ? `inconclusive: the paired interval of the robust change ${iv(robust)} reaches -${t.robustR1Tolerance} but is +-${half} wide, more than the tolerance: evaluate more images (nightly.evalLimit)`
        : `robust R@1 ${pm.robustR1} -> ${cm.robustR1}: the paired interval of the change ${iv(robust)} reaches -${t.robustR1Tolerance} (tolerance)`,
    );
  }
  if (clean.lo <= -t.cleanR1MaxDrop) reasons.push(`clean R@1 ${pm.cleanR1} -> ${cm.cleanR1}: the paired interval of the change ${iv(clean)} reaches -${t.cleanR1MaxDrop} (allowed drop)`);
  const pass = reasons.length === 0;
  if (pass) reasons.push(`robust R@1 ${pm.robustR1} -> ${cm.robustR1}, change ${iv(robust)} above -${t.robustR1Tolerance}; clean R@1 ${pm.cleanR1} -> ${cm.cleanR1}, change ${iv(clean)} above -${t.cleanR1MaxDrop}`);
  if (underpowered) reasons.push(`underpowered: the robust interval is +-${half} wide, more than the tolerance ${t.robustR1Tolerance}; evaluate more images (nightly.evalLimit)`);
  return { pass, reasons, paired: { robust, clean }, ...(underpowered ? { underpowered } : {}), thresholds: t };
}
