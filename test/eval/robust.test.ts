/**
 * `manyfold eval --attack` and experiments: robust recall of a model on a split through the one probe runner
 * (in-memory source), with sanity checks, adversarial examples, the papers' attacked-gallery protocol, and the
 * reports. The fake linear encoder of robust-fixture.ts solves the split by construction, so attacks have
 * something to break.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { useCpu } from '../attacks/setup.js';
import { evaluateRobust, type RobustEvalReport } from '../../src/eval/robust/evaluate.js';
import { runSanityChecks } from '../../src/eval/robust/checks.js';
import { renderRobustHtml, renderRobustMarkdown } from '../../src/eval/robust/render.js';
import { renderExamplesHtml } from '../../src/eval/robust/examples.js';
import { robustnessCurveSvg } from '../../src/eval/robust/curve.js';
import type { ProbeAttackSpec } from '../../src/eval/robust/catalog.js';
import type { AttackFigures } from '../../src/eval/robust/runner.js';
import { evalSuite } from '../../src/cli/commands/eval.js';
import { robustFixture } from './robust-fixture.js';

let fx: Awaited<ReturnType<typeof robustFixture>>;

beforeAll(async () => {
  await useCpu();
  // low contrast: a 16/255 budget is large against the images' spread, 4/255 is not (a robustness curve)
  fx = await robustFixture({ contrast: 0.1 });
});

/** the report without wall-clock fields */
function numbers(r: RobustEvalReport): unknown {
  return JSON.parse(JSON.stringify(r, (k, v) => (['wallMs', 'startedAt', 'finishedAt'].includes(k) ? undefined : v)));
}
const r1 = (d: { recall: Record<string, { mean: number }> } | undefined) => d?.recall.r1?.mean;
const byLabel = (r: RobustEvalReport, label: string): AttackFigures => {
  const a = r.attacks.find((x) => x.label === label);
  if (!a) throw new Error(`no ${label} in ${r.attacks.map((x) => x.label).join(', ')}`);
  return a;
};
const suite = (names: string, eps: number[], extra: Partial<ProbeAttackSpec> = {}): ProbeAttackSpec[] =>
  evalSuite(names, { eps, steps: extra.steps ?? 5, words: 1, queries: 20, textQueries: 10, transferAttack: 'pgd', surrogate: 'given to the call' }).specs;

describe('evaluateRobust (the probe runner over the in-memory source)', () => {
  it('one entry per attack and eps, intervals around every figure, robust = worst case, sanity and examples; tensors flat', async () => {
    const before = tf.memory().numTensors;
    const { report, examples } = await evaluateRobust(fx.encoder, fx.split, { attacks: suite('pgd,text,coattack', [4, 16]), seed: 1, resamples: 200, defended: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(report.format).toBe('manyfold-robust/1');
    expect(report.source.kind).toBe('in-memory');
    expect(report.queries).toMatchObject({ images: 12, captions: 24 });
    expect(r1(report.clean.tr)).toBeGreaterThan(60);
    expect(report.attacks.map((a) => a.label)).toEqual(['pgd@4', 'pgd@16', 'text', 'coattack@4', 'coattack@16']);
    for (const a of report.attacks) {
      for (const d of ['tr', 'ir'] as const) {
        const f = a[d];
        if (!f) continue;
        expect(Object.keys(f.recall)).toEqual(['r1', 'r5', 'r10']);
        expect(f.recall.r1.lo).toBeLessThanOrEqual(f.recall.r1.mean);
        expect(f.recall.r1.hi).toBeGreaterThanOrEqual(f.recall.r1.mean);
      }
    }
    // the gallery is clean: an image attack leaves caption queries alone, a text attack image queries
    expect(byLabel(report, 'pgd@16').ir).toBeUndefined();
    expect(byLabel(report, 'text').tr).toBeUndefined();
    expect(byLabel(report, 'pgd@16').spec).toEqual({ name: 'pgd', eps: 16, steps: 5 });
    expect(byLabel(report, 'pgd@16').config).toMatchObject({ eps: 16 / 255, steps: 5 });
    // a 16/255 PGD on a linear model breaks image->text retrieval
    expect(r1(byLabel(report, 'pgd@16').tr)).toBeLessThan(r1(report.clean.tr)!);
    for (const a of report.attacks) {
      if (a.tr) expect(r1(report.robust.tr)).toBeLessThanOrEqual(r1(a.tr)!);
      if (a.ir) expect(r1(report.robust.ir)).toBeLessThanOrEqual(r1(a.ir)!);
    }
    expect(report.sanity.checks.map((c) => c.id)).toEqual(['nan', 'gradient', 'no-effect', 'undefended-strength', 'monotone-eps', 'steps', 'gradient-masking']);
    expect(report.sanity.checks.find((c) => c.id === 'steps')!.status).not.toBe('skipped'); // the PGD rerun ran
    expect(report.sanity.warnings).toBe(report.sanity.checks.filter((c) => c.status === 'warn').length);
    expect(examples.length).toBe(4);
    expect(examples[0].label).toBe('coattack@16'); // the largest eps of an attack that also edits captions
    expect(examples[0].adv!.length).toBe(8 * 8 * 3);
    expect(examples[0].linf255).toBeLessThanOrEqual(16 + 0.5 + 1e-6); // the budget plus 8-bit rounding
  });

  it('ASR is measured at the goal (top 10 by default) and agrees with the recall at 10', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: suite('pgd', [16]), resamples: 100, sanity: false, examples: 0 });
    expect(report.goalK).toBe(10);
    const a = report.attacks[0];
    const n = report.queries.images;
    // every clean hit at 10 that the attack breaks lowers R@10 by one query; misses turned into hits raise it
    const broken = Math.round((a.tr!.asr.asr / 100) * a.tr!.asr.base);
    expect(a.tr!.asr.base).toBe(Math.round((report.clean.tr.recall.r10.mean * n) / 100));
    expect(a.tr!.recall.r10.mean).toBeGreaterThanOrEqual(report.clean.tr.recall.r10.mean - (100 * broken) / n - 1e-9);
  });

  it("the papers' protocol: an attacked gallery makes PGD reach caption queries and a text attack image queries", async () => {
    const attacks = suite('pgd,text', [16]);
    const q = await evaluateRobust(fx.encoder, fx.split, { attacks, resamples: 100, sanity: false, examples: 0 });
    const b = await evaluateRobust(fx.encoder, fx.split, { attacks, gallery: 'attacked', resamples: 100, sanity: false, examples: 0 });
    expect(q.report.gallery).toBe('clean');
    expect(b.report.gallery).toBe('attacked');
    expect(byLabel(b.report, 'pgd@16').ir).toBeDefined();
    expect(r1(byLabel(b.report, 'pgd@16').ir)).toBeLessThan(r1(b.report.clean.ir)!); // adversarial images in the gallery
    // the same adversarial images against the same clean captions: image queries rank alike in both protocols
    expect(b.report.ranks!.attacks[0].tr).toEqual(q.report.ranks!.attacks[0].tr);
    expect(byLabel(b.report, 'text').tr).toBeDefined();
    expect(b.report.protocol).toMatch(/papers' protocol/);
  });

  it('the same seed gives identical numbers and examples', async () => {
    const opts = { attacks: suite('pgd,sga', [8], { steps: 3 }), seed: 7, resamples: 100, sanity: false } as const;
    const a = await evaluateRobust(fx.encoder, fx.split, opts);
    const b = await evaluateRobust(fx.encoder, fx.split, opts);
    expect(numbers(b.report)).toEqual(numbers(a.report));
    expect(Buffer.from(b.examples[0].adv!.buffer).equals(Buffer.from(a.examples[0].adv!.buffer))).toBe(true);
  });

  it('sanity on a real run: eps 0 is a zero-budget no-op, the gradient is finite and non-zero', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: [{ name: 'pgd', eps: 0, steps: 2 }], resamples: 50, defended: false, examples: 0 });
    expect(report.ranks!.attacks[0].tr).toEqual(report.ranks!.clean.tr);
    const noEffect = report.sanity.checks.find((c) => c.id === 'no-effect')!;
    expect(noEffect.status).toBe('warn');
    expect(noEffect.message).toMatch(/zero budget: pgd@0/);
    expect(report.sanity.checks.find((c) => c.id === 'gradient')!.status).toBe('ok');
  });

  it('sanity checks on made-up reports: broken attack on an undefended model, masking, non-monotone eps, weaker with more steps, zero / NaN gradients', () => {
    const fig = (v: number) => ({ n: 100, failed: 0, recall: { r1: { mean: v, lo: v - 5, hi: v + 5 } }, asr: { asr: 10, base: 80 } });
    const attack = (name: 'pgd' | 'blackbox-image', eps: number, tr: number) =>
      ({ name, label: `${name}@${eps}`, spec: { name, eps }, threatModel: name === 'pgd' ? 'white-box' : 'black-box', modalities: ['image'], tr: fig(tr) }) as unknown as AttackFigures;
    const report = (attacks: AttackFigures[]) =>
      ({ clean: { tr: fig(80), ir: fig(50) }, attacks, queries: { images: 100, captions: 500 }, ks: [1], goalK: 1 }) as unknown as RobustEvalReport;
    const status = (checks: { id: string; status: string }[]) => Object.fromEntries(checks.map((c) => [c.id, c.status]));

    const weak = report([attack('pgd', 8, 79)]);
    expect(status(runSanityChecks({ report: weak, defended: false }))['undefended-strength']).toBe('warn');
    expect(status(runSanityChecks({ report: weak, defended: true }))['undefended-strength']).toBe('skipped');

    const checks = runSanityChecks({
      report: report([attack('pgd', 2, 30), attack('pgd', 4, 40), attack('blackbox-image', 4, 10)]),
      gradient: { n: 4, finite: true, maxAbs: 0, zeroFraction: 1 },
      stepsRerun: { label: 'pgd@4', steps: 10, fewerSteps: 5, r1Full: 40, r1Fewer: 20, n: 100 },
    });
    expect(status(checks)).toMatchObject({ 'gradient-masking': 'warn', 'monotone-eps': 'warn', steps: 'warn', gradient: 'warn', 'no-effect': 'skipped' });
    const nan = runSanityChecks({ report: report([]), gradient: { n: 1, finite: false, maxAbs: 0, zeroFraction: 0 } });
    expect(nan.find((c) => c.id === 'gradient')!.message).toMatch(/NaN/);
  });

  it('black-box on the in-memory source within its budget, progress, and cancellation between chunks', async () => {
    const stages: string[] = [];
    const { report } = await evaluateRobust(fx.encoder, fx.split, {
      attacks: suite('pgd,blackbox', [8], { steps: 2 }),
      chunkImages: 4,
      resamples: 50,
      sanity: false,
      onProgress: (p) => stages.push(p.stage),
    });
    const bb = byLabel(report, 'blackbox-image@8');
    expect(bb.threatModel).toBe('black-box');
    expect(bb.attackQueries).toBeGreaterThan(0);
    expect(bb.attackQueries).toBeLessThanOrEqual(20 * 12);
    expect(byLabel(report, 'blackbox-text').attackQueries).toBeLessThanOrEqual(10 * 24);
    expect(stages).toContain('attack pgd@8');
    expect(stages).toContain('attack blackbox-image@8');

    const ac = new AbortController();
    let chunks = 0;
    const run = evaluateRobust(fx.encoder, fx.split, {
      attacks: suite('pgd', [8], { steps: 2 }),
      chunkImages: 2,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.stage.startsWith('attack') && ++chunks === 2) ac.abort(new Error('cancelled by test'));
      },
    });
    await expect(run).rejects.toThrow(/cancelled by test/);
  });

  it('transfer: crafted on a surrogate, measured on the model; white-box on the model is at least as strong', async () => {
    const { fakeEncoder } = await import('../attacks/helpers.js');
    const sur = fakeEncoder({ size: fx.split.size, dim: 32, vocabSize: fx.tokenizer.vocabSize, maxLen: fx.tokenizer.maxLen, seed: 11 });
    const { report } = await evaluateRobust(fx.encoder, fx.split, {
      attacks: suite('pgd,transfer-pgd', [16], { steps: 3 }),
      surrogate: { encoder: sur, tokenizer: fx.tokenizer, id: 'surrogate-1' },
      resamples: 50,
    });
    const t = byLabel(report, 'transfer-pgd@16');
    expect(t.threatModel).toBe('transfer');
    expect(report.surrogate).toBe('surrogate-1');
    expect(t.modelQueries).toBeGreaterThan(0);
    expect(r1(byLabel(report, 'pgd@16').tr)).toBeLessThanOrEqual(r1(t.tr)!);
    expect(report.sanity.checks.find((c) => c.id === 'gradient-masking')!.status).toBe('ok');
    sur.dispose();
  });

  it('textLabels: every caption attack keeps the lexicon; the report and protocol say so', async () => {
    const identity = { name: 'identity', labelOf: (w: string) => w.toLowerCase() }; // every swap changes a label
    const opts = { attacks: suite('text,coattack,sga', [16], { steps: 2 }), resamples: 50, sanity: false, examples: 0 } as const;
    const free = await evaluateRobust(fx.encoder, fx.split, opts);
    const kept = await evaluateRobust(fx.encoder, fx.split, { ...opts, textLabels: identity });
    expect(free.report.textLabels).toBeNull();
    expect(kept.report.textLabels).toBe('identity');
    expect(kept.report.protocol).toContain('keep the identity labels');
    for (const label of ['text', 'coattack@16', 'sga@16']) {
      const changed = (r: typeof free) => r.captions.byAttack[label].filter((c, i) => c !== r.captions.original[i]).length;
      expect(changed(free)).toBeGreaterThan(0);
      expect(changed(kept)).toBe(0);
    }
  });

  it('limit keeps the first N images and their captions; bad input fails naming it', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: suite('text', []), limit: 5, resamples: 50, sanity: false, examples: 0 });
    expect(report.queries).toMatchObject({ images: 5, captions: 10 });
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: suite('pgd', [2]), limit: 0 })).rejects.toThrow(/limit must be a positive integer/);
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: suite('transfer-pgd', [2]) })).rejects.toThrow(/transfer attack: it needs a surrogate/);
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: [{ name: 'pgd', eps: 2, steps: 5 }, { name: 'pgd', eps: 2, steps: 10 }] })).rejects.toThrow(/attacks\[1\] \(pgd\): pgd@2 is already in the suite/);
  });

  it('the CLI suite: old names map onto the catalogue, budgets go only where they apply, unknown names fail', () => {
    const flags = { eps: [2, 4], steps: 10, words: 1, queries: 500, textQueries: 100, transferAttack: 'sga' as const };
    const { specs, surrogate } = evalSuite('pgd,text,blackbox,transfer:runs/clean', flags);
    expect(surrogate).toBe('runs/clean');
    expect(specs).toEqual([
      { name: 'pgd', eps: 2, steps: 10 },
      { name: 'pgd', eps: 4, steps: 10 },
      { name: 'text', maxWordsChanged: 1 },
      { name: 'blackbox-image', eps: 2, maxQueries: 500 },
      { name: 'blackbox-image', eps: 4, maxQueries: 500 },
      { name: 'blackbox-text', maxWordsChanged: 1, maxQueries: 100 },
      { name: 'transfer-sga', eps: 2, steps: 10, maxWordsChanged: 1 },
      { name: 'transfer-sga', eps: 4, steps: 10, maxWordsChanged: 1 },
    ]);
    expect(() => evalSuite('pgd,nope', flags)).toThrow(/unknown attack 'nope'/);
    expect(() => evalSuite('transfer-pgd', flags)).toThrow(/transfer-pgd needs a surrogate model/);
    expect(() => evalSuite('transfer:a,transfer:b', flags)).toThrow(/one transfer surrogate per run/);
  });

  it('reports: Markdown and one self-contained HTML page with curves, examples and sanity checks, every string escaped', async () => {
    const { report, examples } = await evaluateRobust(fx.encoder, fx.split, { attacks: suite('pgd,sga,text', [2, 8], { steps: 2 }), seed: 3, resamples: 50, examples: 2 });
    const hostile = { ...report, source: { ...report.source, name: '<img src=x onerror=alert(1)>' } };
    const md = renderRobustMarkdown(hostile, { command: 'manyfold eval --attack pgd' });
    expect(md).toContain('| sga@8 | white-box |');
    expect(md).toContain('## Sanity checks');
    expect(md).not.toMatch(/(?<!\\)<img src=x/); // Markdown-escaped
    const html = renderRobustHtml(hostile, 'Robust recall', { sections: [await renderExamplesHtml(examples)] });
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&lt;img src=x');
    expect(html).toContain('Robustness curves');
    expect(html).toContain('data:image/png;base64,');
    expect(html).toContain('Sanity checks');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // no scripts, no external resources
    const svg = robustnessCurveSvg(report, 'tr', 1);
    expect(svg.match(/<polyline/g)).toHaveLength(2); // pgd and sga over eps 0, 2, 8
    expect(svg).not.toContain('text (no eps)'); // the text attack leaves image queries alone
    expect(robustnessCurveSvg(report, 'ir', 1)).toContain('text (no eps)');
  });
});
