/**
 * Sanity checks on a robust-recall report: signs that an attack is broken or that robustness is an artefact.
 * Every check returns ok / warn / skipped with a message; the renderers print warnings above the numbers.
 *
 * - nan: every recall is finite;
 * - gradient: the input gradient of the image tower (cosine to the paired caption) on a few images is finite and
 *   non-zero (NaN or zero gradients make PGD a no-op or a random walk);
 * - no-effect: an attack at a non-zero budget that turned no clean hit into a miss at any reported K is suspicious
 *   (eps 0 is reported as a zero budget);
 * - undefended-strength: on an undefended model, a white-box image attack at the standard budget (default 4/255)
 *   must drive image->text R@1 to at most `maxRetained` (default 50%) of clean, else the attack is broken;
 * - monotone-eps: a larger eps of the same attack must not be weaker (beyond a tolerance);
 * - steps: more PGD steps must not be weaker (a rerun with half the steps on the first chunk);
 * - gradient-masking: a black-box or transfer image attack that beats the white-box ones at the same eps means the
 *   white-box gradients are masked, so white-box numbers overstate robustness.
 */
import type { GradientProbe } from './gradient-probe.js';
import { successRate, type Rank } from './metrics.js';
import type { AttackFigures, Direction, RobustProbeReport } from './runner.js';

export interface SanityOptions {
  /** images used by the gradient probe (default 8) */
  probeImages?: number;
  /** re-run PGD with half the steps on the first chunk (default true) */
  stepsCheck?: boolean;
  /** the standard budget for the undefended-strength check, /255 (default 4) */
  standardEps255?: number;
  /** undefended model: attacked TR R@1 must be <= maxRetained * clean TR R@1 (default 0.5) */
  maxRetained?: number;
  /** skip the undefended-strength check when clean TR R@1 is below this (default 10) */
  minCleanR1?: number;
  /** tolerance in recall points for the monotonicity and masking comparisons (default max(2, 200/n)) */
  tolerance?: number;
}

export interface SanityCheck {
  id: 'gradient' | 'no-effect' | 'undefended-strength' | 'monotone-eps' | 'steps' | 'gradient-masking' | 'nan';
  status: 'ok' | 'warn' | 'skipped';
  message: string;
  /** the attack labels the check is about */
  about?: string[];
}

/** PGD at its full steps and at half of them, on the same first-chunk queries and seed */
export interface StepsRerun {
  label: string;
  steps: number;
  fewerSteps: number;
  r1Full: number;
  r1Fewer: number;
  n: number;
}

export interface SanityInput {
  /** the report, with `ranks` (keepRanks) */
  report: RobustProbeReport;
  /** whether the model was trained with a defense; undefined = unknown */
  defended?: boolean;
  gradient?: GradientProbe;
  stepsRerun?: StepsRerun;
  options?: SanityOptions;
}

const WHITE_BOX_IMAGE = new Set(['pgd', 'coattack', 'sga']);
const f1 = (x: number) => x.toFixed(1);
const r1Of = (a: AttackFigures, d: Direction): number | undefined => a[d]?.recall.r1?.mean;

export function runSanityChecks(inp: SanityInput): SanityCheck[] {
  const { report } = inp;
  const o = inp.options ?? {};
  const tolTr = o.tolerance ?? Math.max(2, 200 / report.queries.images);
  const list = report.attacks;
  const eps = (a: AttackFigures) => a.spec.eps ?? null;
  const cleanTr = report.clean.tr.recall.r1?.mean ?? NaN;
  const out: SanityCheck[] = [];

  const figures = (a: AttackFigures) => (['tr', 'ir'] as const).flatMap((d) => (a[d] ? Object.values(a[d]!.recall).map((c) => c.mean) : []));
  const bad = list.filter((a) => figures(a).some((v) => !Number.isFinite(v)));
  const cleanBad = ![report.clean.tr.recall.r1?.mean, report.clean.ir.recall.r1?.mean].every((v) => v !== undefined && Number.isFinite(v));
  out.push(
    bad.length || cleanBad
      ? { id: 'nan', status: 'warn', message: `non-finite recall in ${[...(cleanBad ? ['clean'] : []), ...bad.map((a) => a.label)].join(', ')}`, about: bad.map((a) => a.label) }
      : { id: 'nan', status: 'ok', message: 'all recall values finite' },
  );

  const g = inp.gradient;
  if (!g) out.push({ id: 'gradient', status: 'skipped', message: 'no gradient probe' });
  else if (!g.finite) out.push({ id: 'gradient', status: 'warn', message: `NaN/Inf in the input gradient of the image tower (${g.n} probe images): PGD results are meaningless` });
  else if (!(g.maxAbs > 1e-12))
    out.push({ id: 'gradient', status: 'warn', message: `zero input gradient of the image tower on ${g.n} probe images (max |g| = ${g.maxAbs.toExponential(2)}): white-box image attacks cannot move; robustness would be an artefact` });
  else out.push({ id: 'gradient', status: 'ok', message: `input gradient finite and non-zero (max |g| ${g.maxAbs.toExponential(2)}, ${(100 * g.zeroFraction).toFixed(1)}% exact zeros, ${g.n} images)` });

  const ranks = report.ranks;
  if (!ranks) out.push({ id: 'no-effect', status: 'skipped', message: 'the report keeps no per-query ranks' });
  else {
    const noEffect: string[] = [];
    const zeroBudget: string[] = [];
    list.forEach((a, i) => {
      const judged = (['tr', 'ir'] as const).filter((d) => ranks.attacks[i][d] !== undefined);
      const rates = judged.flatMap((d) => report.ks.map((k) => successRate(ranks.clean[d] as Rank[], ranks.attacks[i][d]!, k)));
      if (rates.every((r) => r.base === 0) || rates.some((r) => r.asr > 0)) return;
      (eps(a) === 0 ? zeroBudget : noEffect).push(a.label);
    });
    if (zeroBudget.length) out.push({ id: 'no-effect', status: 'warn', message: `eps 0 is a zero budget: ${zeroBudget.join(', ')} changed no query's hit (a no-op attack; its recall equals clean)`, about: zeroBudget });
    if (noEffect.length)
      out.push({ id: 'no-effect', status: 'warn', message: `${noEffect.join(', ')} changed no query's hit at K=${report.ks.join(',')}: broken attack, masked gradients, or a budget too small to matter`, about: noEffect });
    if (!zeroBudget.length && !noEffect.length) out.push({ id: 'no-effect', status: 'ok', message: 'every attack turned at least one clean hit into a miss' });
  }

  const std = o.standardEps255 ?? 4;
  const maxRetained = o.maxRetained ?? 0.5;
  const minClean = o.minCleanR1 ?? 10;
  if (inp.defended === undefined) out.push({ id: 'undefended-strength', status: 'skipped', message: 'whether the model is defended is unknown' });
  else if (inp.defended) out.push({ id: 'undefended-strength', status: 'skipped', message: 'the model is defended' });
  else if (!(cleanTr >= minClean)) out.push({ id: 'undefended-strength', status: 'skipped', message: `clean TR R@1 ${f1(cleanTr)} < ${minClean}: too low to judge` });
  else {
    const at = list.filter((a) => WHITE_BOX_IMAGE.has(a.name) && (eps(a) ?? -1) >= std && r1Of(a, 'tr') !== undefined);
    if (at.length === 0) out.push({ id: 'undefended-strength', status: 'skipped', message: `no white-box image attack at eps >= ${std}/255 (the standard budget) was run` });
    else {
      const weak = at.filter((a) => r1Of(a, 'tr')! > maxRetained * cleanTr);
      out.push(
        weak.length
          ? {
              id: 'undefended-strength',
              status: 'warn',
              message: `undefended model, yet ${weak.map((a) => `${a.label} leaves TR R@1 ${f1(r1Of(a, 'tr')!)}`).join('; ')} (clean ${f1(cleanTr)}; expected <= ${f1(maxRetained * cleanTr)} at eps >= ${std}/255): the attack is probably broken`,
              about: weak.map((a) => a.label),
            }
          : { id: 'undefended-strength', status: 'ok', message: `undefended model: every white-box image attack at eps >= ${std}/255 cut TR R@1 to <= ${Math.round(maxRetained * 100)}% of clean` },
      );
    }
  }

  const byName = new Map<string, AttackFigures[]>();
  for (const a of list) if (eps(a) !== null && r1Of(a, 'tr') !== undefined) byName.set(a.name, [...(byName.get(a.name) ?? []), a]);
  const nonMonotone: string[] = [];
  for (const [name, as] of byName) {
    const s = as.slice().sort((x, y) => eps(x)! - eps(y)!);
    for (let i = 1; i < s.length; i++) {
      if (r1Of(s[i], 'tr')! > r1Of(s[i - 1], 'tr')! + tolTr) nonMonotone.push(`${name}: TR R@1 ${f1(r1Of(s[i], 'tr')!)} at ${eps(s[i])}/255 > ${f1(r1Of(s[i - 1], 'tr')!)} at ${eps(s[i - 1])}/255`);
    }
  }
  if ([...byName.values()].every((as) => as.length < 2)) out.push({ id: 'monotone-eps', status: 'skipped', message: 'fewer than two eps values per attack' });
  else
    out.push(
      nonMonotone.length
        ? { id: 'monotone-eps', status: 'warn', message: `a larger budget is weaker: ${nonMonotone.join('; ')}` }
        : { id: 'monotone-eps', status: 'ok', message: `recall does not rise with eps (tolerance ${f1(tolTr)} points)` },
    );

  const s = inp.stepsRerun;
  if (!s) out.push({ id: 'steps', status: 'skipped', message: 'no PGD attack with eps > 0 and >= 2 steps' });
  else {
    const tol = o.tolerance ?? Math.max(2, 200 / s.n);
    out.push(
      s.r1Full > s.r1Fewer + tol
        ? {
            id: 'steps',
            status: 'warn',
            message: `${s.label}: ${s.steps} steps leave TR R@1 ${f1(s.r1Full)} but ${s.fewerSteps} steps ${f1(s.r1Fewer)} (first ${s.n} images): more steps are weaker (step size too large, or a non-monotone search)`,
            about: [s.label],
          }
        : { id: 'steps', status: 'ok', message: `${s.label}: ${s.steps} steps TR R@1 ${f1(s.r1Full)} <= ${s.fewerSteps} steps ${f1(s.r1Fewer)} + ${f1(tol)} (first ${s.n} images)` },
    );
  }

  // image side only: the one gradient-based search (word substitutions are scored forward)
  const masked: string[] = [];
  let compared = 0;
  for (const a of list.filter((x) => x.threatModel !== 'white-box' && r1Of(x, 'tr') !== undefined && x.modalities.includes('image'))) {
    const white = list.filter((w) => WHITE_BOX_IMAGE.has(w.name) && eps(w) === eps(a) && r1Of(w, 'tr') !== undefined);
    if (white.length === 0) continue;
    compared++;
    const best = Math.min(...white.map((w) => r1Of(w, 'tr')!));
    if (r1Of(a, 'tr')! < best - tolTr) masked.push(`${a.label} TR R@1 ${f1(r1Of(a, 'tr')!)} < white-box ${f1(best)}`);
  }
  if (compared === 0) out.push({ id: 'gradient-masking', status: 'skipped', message: 'no black-box or transfer image attack with a white-box counterpart at the same eps' });
  else
    out.push(
      masked.length
        ? { id: 'gradient-masking', status: 'warn', message: `black-box/transfer stronger than white-box at the same eps (gradient masking; white-box numbers overstate robustness): ${masked.join('; ')}` }
        : { id: 'gradient-masking', status: 'ok', message: `white-box image attacks at least as strong as black-box/transfer at the same eps (tolerance ${f1(tolTr)} points)` },
    );
  return out;
}
