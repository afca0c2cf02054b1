import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { useCpu } from '../attacks/setup.js';
import { attackSuccessRate, directionFromRanks, evaluateRobust, worstRanks, type RobustReport } from '../../src/eval/robust.js';
import { runSanityChecks } from '../../src/eval/sanity.js';
import { protocolLine } from '../../src/eval/report/format.js';
import { robustFixture } from './robust-fixture.js';

let fx: ReturnType<typeof robustFixture>;

beforeAll(async () => {
  await useCpu();
  fx = robustFixture();
});

/** the report without wall-clock fields */
function numbers(r: RobustReport): unknown {
  return JSON.parse(JSON.stringify(r, (k, v) => (k === 'seconds' || k === 'wallSeconds' ? undefined : v)));
}

describe('ASR and worst-case math (hand-made)', () => {
  it('ASR = share of clean-correct queries that fail under attack', () => {
    const clean = Uint8Array.from([1, 1, 1, 1, 0, 0]);
    const adv = Uint8Array.from([1, 0, 0, 1, 1, 0]); // two of four correct ones fail; a clean miss turning into a hit does not count
    const r = attackSuccessRate(clean, adv);
    expect(r.base).toBe(4);
    expect(r.asr).toBe(50);
    expect(Array.from(r.fail)).toEqual([0, 1, 1, 0]);
    expect(attackSuccessRate(Uint8Array.from([0, 0]), Uint8Array.from([0, 1])).asr).toBe(0); // no correct query: 0, not NaN
  });

  it('worst case takes the maximum rank per query; hits only when a hit under every attack', () => {
    const a = Int32Array.from([0, 3, 0, 12]);
    const b = Int32Array.from([2, 0, 0, 4]);
    const w = worstRanks([a, b]);
    expect(Array.from(w)).toEqual([2, 3, 0, 12]);
    const d = directionFromRanks(w);
    expect(Array.from(d.hits[1])).toEqual([0, 0, 1, 0]);
    expect(Array.from(d.hits[5])).toEqual([1, 1, 1, 0]);
    expect(d.recall[10]).toBe(75);
  });
});

describe('evaluateRobust on a small fake model', () => {
  it('JSON shape: clean, attacks with tr/ir/asr/ci, worst, protocol next to every entry; tensors flat', async () => {
    const before = tf.memory().numTensors;
    const { report, examples } = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd', 'text', 'coattack'], eps255: [4, 16], steps: 5, seed: 1, resamples: 200, defended: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(report.clean.tr.r1).toBeGreaterThan(60);
    expect(Object.keys(report.attacks).sort()).toEqual(['coattack@16', 'coattack@4', 'pgd@16', 'pgd@4', 'text'].sort());
    for (const e of Object.values(report.attacks)) {
      for (const d of ['tr', 'ir'] as const) {
        expect(Object.keys(e[d])).toEqual(['r1', 'r5', 'r10']);
        expect(e.ci[d].r1[0]).toBeLessThanOrEqual(e[d].r1);
        expect(e.ci[d].r1[1]).toBeGreaterThanOrEqual(e[d].r1);
        expect(Object.keys(e.asr[d])).toEqual(['r1', 'r5', 'r10']);
      }
      expect(e.protocol).toMatchObject({ side: 'query', seed: 1, split: 'test', nImages: 12, nTexts: 24 });
      expect(e.wallSeconds).toBeGreaterThanOrEqual(0);
      expect(e.queries.total).toBeGreaterThan(0);
    }
    expect(report.attacks['pgd@16'].protocol).toMatchObject({ eps255: 16, steps: 5, norm: 'linf', words: null });
    expect(report.attacks['text'].protocol).toMatchObject({ eps255: null, words: 1 });
    expect(report.attacks['pgd@16'].perturbation.linfMax255).toBeLessThanOrEqual(16 + 1e-3);
    // a 16/255 PGD on a linear model breaks image->text retrieval
    expect(report.attacks['pgd@16'].tr.r1).toBeLessThan(report.clean.tr.r1);
    expect(Object.keys(report.worst)).toEqual(['4', '16']);
    expect(report.worst['16'].over).toEqual(['pgd@16', 'coattack@16', 'text']);
    // worst <= every member, both directions
    for (const l of report.worst['16'].over) {
      expect(report.worst['16'].tr.r1).toBeLessThanOrEqual(report.attacks[l].tr.r1);
      expect(report.worst['16'].ir.r1).toBeLessThanOrEqual(report.attacks[l].ir.r1);
    }
    expect(report.sanity.checks.map((c) => c.id)).toContain('undefended-strength');
    expect(examples.length).toBeGreaterThan(0);
    expect(examples[0].adv).not.toBeNull();
  });

  it('ASR in the report agrees with the recall numbers', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd'], eps255: [16], steps: 5, resamples: 100, sanity: false });
    const e = report.attacks['pgd@16'];
    // every clean-correct query that fails lowers recall by one query: R@1 >= clean - ASR*base/n
    const failed = (e.asr.tr.r1 / 100) * e.asr.base.tr.r1;
    expect(Number.isInteger(Math.round(failed * 1e6) / 1e6)).toBe(true);
    expect(e.tr.r1).toBeGreaterThanOrEqual(report.clean.tr.r1 - (100 * failed) / 12 - 0.01);
    expect(e.asr.base.tr.r1).toBe(Math.round((report.clean.tr.r1 * 12) / 100));
  });

  it('side query vs both: PGD leaves IR clean under query, perturbs the IR gallery under both; text the reverse', async () => {
    const q = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd', 'text'], eps255: [16], steps: 5, side: 'query', resamples: 100, sanity: false });
    const b = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd', 'text'], eps255: [16], steps: 5, side: 'both', resamples: 100, sanity: false });
    expect(q.report.attacks['pgd@16'].attacked).toEqual({ tr: true, ir: false });
    expect(q.report.attacks['pgd@16'].ir).toEqual({ r1: q.report.clean.ir.r1, r5: q.report.clean.ir.r5, r10: q.report.clean.ir.r10 });
    expect(q.report.attacks['pgd@16'].asr.ir.r1).toBe(0);
    expect(b.report.attacks['pgd@16'].attacked).toEqual({ tr: true, ir: true });
    expect(b.report.attacks['pgd@16'].ir.r1).toBeLessThan(b.report.clean.ir.r1); // adversarial images in the IR gallery
    // same adversarial images: TR identical under both sides for an image-only attack (captions are clean)
    expect(b.report.attacks['pgd@16'].tr).toEqual(q.report.attacks['pgd@16'].tr);
    expect(q.report.attacks['text'].attacked).toEqual({ tr: false, ir: true });
    expect(q.report.attacks['text'].tr.r1).toBe(q.report.clean.tr.r1);
    expect(b.report.attacks['text'].attacked.tr).toBe(true);
    expect(b.report.robust.protocol).toMatch(/side=both/);
  });

  it('same seed -> identical numbers; another seed may differ', async () => {
    const opts = { attacks: ['pgd', 'sga'], eps255: [8], steps: 3, seed: 7, resamples: 100, sanity: false } as const;
    const a = await evaluateRobust(fx.encoder, fx.split, { ...opts, attacks: [...opts.attacks], eps255: [...opts.eps255] });
    const b = await evaluateRobust(fx.encoder, fx.split, { ...opts, attacks: [...opts.attacks], eps255: [...opts.eps255] });
    expect(numbers(b.report)).toEqual(numbers(a.report));
    expect(Buffer.from(b.examples[0].adv!.buffer).equals(Buffer.from(a.examples[0].adv!.buffer))).toBe(true);
  });

  it('sanity: eps 0 is flagged as a no-op attack; a broken attack on an undefended model is flagged', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd'], eps255: [0], steps: 2, resamples: 50, defended: false });
    expect(report.attacks['pgd@0'].tr).toEqual({ r1: report.clean.tr.r1, r5: report.clean.tr.r5, r10: report.clean.tr.r10 });
    const w = report.sanity.checks.filter((c) => c.status === 'warn');
    expect(w.map((c) => c.id)).toContain('no-effect');
    expect(report.sanity.warnings).toBe(w.length);
    expect(report.sanity.checks.find((c) => c.id === 'gradient')!.status).toBe('ok');

    // the standard budget that leaves R@1 at its clean value on an undefended model
    const broken = { ...report.attacks['pgd@0'], label: 'pgd@8', eps255: 8 };
    const checks = runSanityChecks({ clean: { tr: report.clean.tr, ir: report.clean.ir }, entries: { 'pgd@8': broken }, defended: false, nImages: 12, nTexts: 24 });
    expect(checks.find((c) => c.id === 'undefended-strength')!.status).toBe('warn');
    expect(runSanityChecks({ clean: { tr: report.clean.tr, ir: report.clean.ir }, entries: { 'pgd@8': broken }, defended: true, nImages: 12, nTexts: 24 }).find((c) => c.id === 'undefended-strength')!.status).toBe('skipped');
  });

  it('sanity: masking (black-box beats white-box), non-monotone eps, weaker with more steps, zero/NaN gradients', () => {
    const base = (label: string, attack: 'pgd' | 'blackbox', eps: number, r1: number) =>
      ({
        attack,
        label,
        eps255: eps,
        protocol: { threatModel: attack === 'blackbox' ? 'black-box' : 'white-box' },
        attacked: { tr: true, ir: false },
        tr: { r1, r5: r1, r10: r1 },
        ir: { r1: 50, r5: 50, r10: 50 },
        asr: { tr: { r1: 10, r5: 10, r10: 10 }, ir: { r1: 0, r5: 0, r10: 0 }, base: { tr: { r1: 80, r5: 90, r10: 95 }, ir: { r1: 50, r5: 60, r10: 70 } } },
      }) as never;
    const clean = { tr: { r1: 80, r5: 90, r10: 95 }, ir: { r1: 50, r5: 60, r10: 70 } };
    const checks = runSanityChecks({
      clean,
      entries: { 'pgd@2': base('pgd@2', 'pgd', 2, 30), 'pgd@4': base('pgd@4', 'pgd', 4, 40), 'blackbox@4': base('blackbox@4', 'blackbox', 4, 10) },
      gradient: { n: 4, finite: true, maxAbs: 0, zeroFraction: 1 },
      stepsRerun: { label: 'pgd@4', steps: 10, fewerSteps: 5, r1Full: 40, r1Fewer: 20, n: 100 },
      nImages: 100,
      nTexts: 500,
    });
    const status = Object.fromEntries(checks.map((c) => [c.id, c.status]));
    expect(status['gradient-masking']).toBe('warn');
    expect(status['monotone-eps']).toBe('warn');
    expect(status['steps']).toBe('warn');
    expect(status['gradient']).toBe('warn');
    const nan = runSanityChecks({ clean, entries: {}, gradient: { n: 1, finite: false, maxAbs: 0, zeroFraction: 0 }, nImages: 1, nTexts: 1 });
    expect(nan.find((c) => c.id === 'gradient')!.message).toMatch(/NaN/);
  });

  it('probe API: a list of pairs, progress callback, cancellation by AbortSignal', async () => {
    const per = fx.split.size * fx.split.size * 3;
    const pairs = Array.from({ length: 6 }, (_, i) => ({
      image: fx.split.images.subarray(i * per, (i + 1) * per),
      captions: fx.split.imageToCaptions[i].map((c) => fx.split.captions[c]),
      id: `p${i}`,
    }));
    const seen: string[] = [];
    const { report } = await evaluateRobust(
      fx.encoder,
      { size: fx.split.size, pairs, name: 'probe' },
      { attacks: ['pgd', 'blackbox'], eps255: [8], steps: 2, chunkImages: 2, resamples: 50, blackbox: { imageQueries: 20, textQueries: 10 }, onProgress: (p) => seen.push(`${p.stage}:${p.label ?? ''}`) },
    );
    expect(report.nImages).toBe(6);
    expect(report.split).toBe('probe');
    expect(report.attacks['blackbox@8'].protocol.threatModel).toBe('black-box');
    expect(report.attacks['blackbox@8'].queries.perImage).toBeLessThanOrEqual(20);
    expect(report.attacks['blackbox@8'].queries.perCaption).toBeLessThanOrEqual(10);
    expect(seen).toContain('attack:pgd@8');
    expect(seen).toContain('attack:blackbox@8');

    const ac = new AbortController();
    const run = evaluateRobust(fx.encoder, fx.split, {
      attacks: ['pgd'],
      eps255: [8],
      steps: 2,
      chunkImages: 2,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.stage === 'attack' && p.done >= 4) ac.abort(new Error('cancelled by test'));
      },
    });
    await expect(run).rejects.toThrow(/cancelled by test/);
  });

  it('transfer: crafted on a surrogate, evaluated on the target; the protocol names the surrogate', async () => {
    const { Encoder } = await import('../../src/model/encoder.js');
    const { fakeEncoder } = await import('../attacks/helpers.js');
    const sur = fakeEncoder({ size: fx.split.size, dim: 32, vocabSize: fx.tokenizer.vocabSize, maxLen: fx.tokenizer.maxLen, seed: 11 });
    const surrogate = new Encoder(sur, fx.tokenizer, { id: 'surrogate-1' });
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd', 'transfer:s'], eps255: [16], steps: 3, transferAttack: 'pgd', surrogates: { s: surrogate }, resamples: 50 });
    const t = report.attacks['transfer:s@16'];
    expect(t.protocol.threatModel).toBe('transfer');
    expect(t.protocol.surrogate).toMatch(/surrogate-1.*pgd/);
    expect(t.perturbation.linfMax255).toBeLessThanOrEqual(16 + 1e-3);
    // white-box on the target is at least as strong as a transfer from an unrelated surrogate
    expect(report.attacks['pgd@16'].tr.r1).toBeLessThanOrEqual(t.tr.r1);
    expect(report.sanity.checks.find((c) => c.id === 'gradient-masking')!.status).toBe('ok');
    sur.dispose();
  });

  it('textLabels: every caption attack keeps the lexicon; recorded in the settings and the protocol line', async () => {
    const identity = { name: 'identity', labelOf: (w: string) => w.toLowerCase() }; // every swap changes a label
    const opts = { attacks: ['text', 'coattack', 'sga'], eps255: [16], steps: 2, resamples: 50, sanity: false } as const;
    const free = await evaluateRobust(fx.encoder, fx.split, { ...opts, attacks: [...opts.attacks], eps255: [16] });
    const kept = await evaluateRobust(fx.encoder, fx.split, { ...opts, attacks: [...opts.attacks], eps255: [16], textLabels: identity });
    expect(free.report.robust.textLabels).toBeNull();
    expect(kept.report.robust.textLabels).toBe('identity');
    expect(protocolLine(kept.report)).toContain('words 1 (substitutes keep their identity label)');
    for (const k of ['text', 'coattack@16', 'sga@16']) {
      expect(free.report.attacks[k].perturbation.captionsChanged).toBeGreaterThan(0);
      expect(kept.report.attacks[k].perturbation.captionsChanged).toBe(0);
    }
  });

  it('limit keeps the first N images and their captions; bad options fail clearly', async () => {
    const { report } = await evaluateRobust(fx.encoder, fx.split, { attacks: ['text'], limit: 5, resamples: 50, sanity: false });
    expect(report.nImages).toBe(5);
    expect(report.nTexts).toBe(10);
    expect(report.worst.all.over).toEqual(['text']);
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: ['nope'] })).rejects.toThrow(/unknown attack/);
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: ['transfer:x'] })).rejects.toThrow(/no such surrogate/);
    await expect(evaluateRobust(fx.encoder, fx.split, { attacks: ['pgd'], eps255: [-1] })).rejects.toThrow(/eps/);
  });
});
