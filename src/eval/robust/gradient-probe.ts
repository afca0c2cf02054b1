/**
 * Sanity checks on a robust evaluation: signs that an attack is broken or that robustness is an artefact.
 * Every check returns ok / warn / skipped with a message; reports print the warnings next to the numbers.
 *
 * - gradient: the input gradient of the image tower (cosine to the paired caption) on a few images must be
 *   finite and non-zero (NaN or zero gradients make PGD a no-op or a random walk);
 * - no-effect: an attack at a non-zero budget that changed no query's hit at K = 1, 5, 10 is suspicious
 *   (a zero budget, eps 0, is reported as a no-op attack);
 * - undefended-strength: on an undefended model, a white-box image attack at the standard budget
 *   (eps >= standardEps255, default 4/255 at 32 px) must drive image->text R@1 far down (to at most
 *   maxRetained, default 50%, of clean), else the attack is broken;
 * - monotone-eps: a larger eps must not be weaker (beyond a tolerance);
 * - steps: more steps must not be weaker: the eval re-runs PGD at its largest eps with half the steps on the
 *   first chunk and compares R@1 on those queries;
 * - gradient-masking: a black-box or transfer attack that beats the white-box attacks at the same budget means
 *   the white-box gradients are masked (obfuscated), so white-box numbers overstate robustness.
 */
import { tf } from '../engine/tf.js';
import type { DualEncoder } from '../model/types.js';
import type { RobustEntry, Triple } from './robust.js';

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
  /** the entry labels the check is about */
  about?: string[];
}

export interface GradientProbe {
  n: number;
  finite: boolean;
  maxAbs: number;
  /** share of exactly-zero gradient entries */
  zeroFraction: number;
}

/**
 * Input gradient of sum_i cos(image_i, caption_i) on n images (no weight gradients). textEmb rows `captions[i]`
 * are the paired caption embeddings of image i.
 */
export function gradientProbe(
  model: DualEncoder,
  pixels: Float32Array,
  n: number,
  size: number,
  textEmb: Float32Array,
  captions: readonly number[],
  dim: number,
): GradientProbe {
  if (n === 0) return { n, finite: true, maxAbs: 0, zeroFraction: 1 };
  const t = new Float32Array(n * dim);
  captions.forEach((c, i) => t.set(textEmb.subarray(c * dim, (c + 1) * dim), i * dim));
  const g = tf.tidy(() => {
    const x = tf.tensor4d(pixels, [n, size, size, 3]);
    const tt = tf.tensor2d(t, [n, dim]);
    const f = (xx: tf.Tensor): tf.Scalar => tf.sum(tf.mul(model.imageTower(xx as tf.Tensor4D), tt));
    return tf.grad(f)(x).dataSync() as Float32Array;
  });
  let finite = true;
  let maxAbs = 0;
  let zeros = 0;
  for (let i = 0; i < g.length; i++) {
    const v = g[i];
    if (!Number.isFinite(v)) finite = false;
    else if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    if (v === 0) zeros++;
  }
  return { n, finite, maxAbs, zeroFraction: zeros / g.length };
}

export interface SanityInput {
  clean: { tr: Triple; ir: Triple };
  entries: Record<string, RobustEntry>;
  defended?: boolean;
  gradient?: GradientProbe;
  stepsRerun?: { label: string; steps: number; fewerSteps: number; r1Full: number; r1Fewer: number; n: number };
  nImages: number;
  nTexts: number;
  options?: SanityOptions;
}

const WHITE_IMAGE = new Set(['pgd', 'coattack', 'sga']);
const f1 = (x: number) => x.toFixed(1);

export function runSanityChecks(inp: SanityInput): SanityCheck[] {
  const o = inp.options ?? {};
  const tolTr = o.tolerance ?? Math.max(2, 200 / inp.nImages);
  const tolIr = o.tolerance ?? Math.max(2, 200 / inp.nTexts);
  const list = Object.values(inp.entries);
  const out: SanityCheck[] = [];

  // nan
  const bad = list.filter((e) => [e.tr.r1, e.tr.r5, e.tr.r10, e.ir.r1, e.ir.r5, e.ir.r10].some((v) => !Number.isFinite(v)));
  const cleanBad = [inp.clean.tr.r1, inp.clean.ir.r1].some((v) => !Number.isFinite(v));
  out.push(
    bad.length || cleanBad
      ? { id: 'nan', status: 'warn', message: `non-finite recall in ${cleanBad ? 'clean, ' : ''}${bad.map((e) => e.label).join(', ')}`, about: bad.map((e) => e.label) }
      : { id: 'nan', status: 'ok', message: 'all recall values finite' },
  );

  // gradient
  const g = inp.gradient;
  if (!g) out.push({ id: 'gradient', status: 'skipped', message: 'no gradient probe' });
  else if (!g.finite) out.push({ id: 'gradient', status: 'warn', message: `NaN/Inf in the input gradient of the image tower (${g.n} probe images): PGD results are meaningless` });
  else if (!(g.maxAbs > 1e-12))
    out.push({ id: 'gradient', status: 'warn', message: `zero input gradient of the image tower on ${g.n} probe images (max |g| = ${g.maxAbs.toExponential(2)}): white-box image attacks cannot move; robustness would be an artefact` });
  else out.push({ id: 'gradient', status: 'ok', message: `input gradient finite and non-zero (max |g| ${g.maxAbs.toExponential(2)}, ${(100 * g.zeroFraction).toFixed(1)}% exact zeros, ${g.n} images)` });

  // no-effect
  const noEffect: string[] = [];
  const zeroBudget: string[] = [];
  for (const e of list) {
    const dirs = (['tr', 'ir'] as const).filter((d) => e.attacked[d] && e.asr.base[d].r1 + e.asr.base[d].r10 > 0);
    if (dirs.length === 0) continue;
    const none = dirs.every((d) => e.asr[d].r1 === 0 && e.asr[d].r5 === 0 && e.asr[d].r10 === 0);
    if (!none) continue;
    if (e.eps255 === 0) zeroBudget.push(e.label);
    else noEffect.push(e.label);
  }
  if (zeroBudget.length)
    out.push({ id: 'no-effect', status: 'warn', message: `eps 0 is a zero budget: ${zeroBudget.join(', ')} changed no query's hit (a no-op attack; its recall equals clean)`, about: zeroBudget });
  if (noEffect.length)
    out.push({ id: 'no-effect', status: 'warn', message: `${noEffect.join(', ')} changed no query's hit at K=1,5,10: broken attack, masked gradients, or a budget too small to matter`, about: noEffect });
  if (!zeroBudget.length && !noEffect.length) out.push({ id: 'no-effect', status: 'ok', message: 'every attack flipped at least one query' });

  // undefended-strength
  const std = o.standardEps255 ?? 4;
  const maxRetained = o.maxRetained ?? 0.5;
  const minClean = o.minCleanR1 ?? 10;
  if (inp.defended === undefined) out.push({ id: 'undefended-strength', status: 'skipped', message: 'whether the model is defended is unknown' });
  else if (inp.defended) out.push({ id: 'undefended-strength', status: 'skipped', message: 'the model is defended' });
  else if (inp.clean.tr.r1 < minClean) out.push({ id: 'undefended-strength', status: 'skipped', message: `clean TR R@1 ${f1(inp.clean.tr.r1)} < ${minClean}: too low to judge` });
  else {
    const at = list.filter((e) => WHITE_IMAGE.has(e.attack) && e.eps255 !== null && e.eps255 >= std);
    if (at.length === 0) out.push({ id: 'undefended-strength', status: 'skipped', message: `no white-box image attack at eps >= ${std}/255 (the standard budget) was run` });
    else {
      const weak = at.filter((e) => e.tr.r1 > maxRetained * inp.clean.tr.r1);
      out.push(
        weak.length
          ? {
              id: 'undefended-strength',
              status: 'warn',
              message: `undefended model, yet ${weak.map((e) => `${e.label} leaves TR R@1 ${f1(e.tr.r1)}`).join('; ')} (clean ${f1(inp.clean.tr.r1)}; expected <= ${f1(maxRetained * inp.clean.tr.r1)} at eps >= ${std}/255): the attack is probably broken`,
              about: weak.map((e) => e.label),
            }
          : { id: 'undefended-strength', status: 'ok', message: `undefended model: every white-box image attack at eps >= ${std}/255 cut TR R@1 to <= ${Math.round(maxRetained * 100)}% of clean` },
      );
    }
  }

  // monotone-eps
  const byAttack = new Map<string, RobustEntry[]>();
  for (const e of list) {
    if (e.eps255 === null) continue;
    const k = e.label.slice(0, e.label.lastIndexOf('@'));
    byAttack.set(k, [...(byAttack.get(k) ?? []), e]);
  }
  const nonMono: string[] = [];
  for (const [k, es] of byAttack) {
    const s = es.slice().sort((a, b) => a.eps255! - b.eps255!);
    for (let i = 1; i < s.length; i++) {
      if (s[i].tr.r1 > s[i - 1].tr.r1 + tolTr) nonMono.push(`${k}: TR R@1 ${f1(s[i].tr.r1)} at ${s[i].eps255}/255 > ${f1(s[i - 1].tr.r1)} at ${s[i - 1].eps255}/255`);
    }
  }
  if ([...byAttack.values()].every((es) => es.length < 2)) out.push({ id: 'monotone-eps', status: 'skipped', message: 'fewer than two eps values per attack' });
  else
    out.push(
      nonMono.length
        ? { id: 'monotone-eps', status: 'warn', message: `a larger budget is weaker: ${nonMono.join('; ')}` }
        : { id: 'monotone-eps', status: 'ok', message: `recall does not rise with eps (tolerance ${f1(tolTr)} points)` },
    );

  // steps
  const s = inp.stepsRerun;
  if (!s) out.push({ id: 'steps', status: 'skipped', message: 'no PGD entry with eps > 0 and >= 2 steps' });
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

  // gradient-masking (image side: the only gradient-based search; word substitutions are forward-scored)
  const masked: string[] = [];
  const notes: string[] = [];
  let compared = 0;
  for (const e of list.filter((x) => x.attack === 'blackbox' || x.attack === 'transfer')) {
    const wbImg = list.filter((w) => WHITE_IMAGE.has(w.attack) && w.eps255 === e.eps255);
    if (wbImg.length) {
      compared++;
      const best = Math.min(...wbImg.map((w) => w.tr.r1));
      if (e.tr.r1 < best - tolTr) masked.push(`${e.label} TR R@1 ${f1(e.tr.r1)} < white-box ${f1(best)}`);
    }
    const wbTxt = list.filter((w) => w.protocol.threatModel === 'white-box' && w.attacked.ir && (w.eps255 === null || w.eps255 === e.eps255));
    if (wbTxt.length && e.attacked.ir) {
      const best = Math.min(...wbTxt.map((w) => w.ir.r1));
      if (e.ir.r1 < best) notes.push(`${e.label} IR R@1 ${f1(e.ir.r1)} < white-box caption attacks ${f1(best)} (rank-guided word search beats the embedding objective; not gradient masking)`);
    }
  }
  const note = notes.length ? ` Note: ${notes.join('; ')}.` : '';
  if (compared === 0) out.push({ id: 'gradient-masking', status: 'skipped', message: `no black-box/transfer image attack with a white-box counterpart at the same eps.${note}` });
  else
    out.push(
      masked.length
        ? { id: 'gradient-masking', status: 'warn', message: `black-box/transfer stronger than white-box at the same eps (gradient masking; white-box numbers overstate robustness): ${masked.join('; ')}.${note}` }
        : { id: 'gradient-masking', status: 'ok', message: `white-box image attacks at least as strong as black-box/transfer at the same eps (tolerance ${f1(tolTr)} points).${note}` },
    );
  return out;
}
