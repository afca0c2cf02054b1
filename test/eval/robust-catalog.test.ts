/** The probe's attack catalogue, spec validation, the /255 conversion, suite checks and the rank metrics. */
import { describe, expect, it } from 'vitest';
import { checkSuite, probeAttackSpecSchema, recallFigures, recipeOptions, runRobustProbe, specsFromList, successRate, worstCase, PROBE_ATTACKS, type ProbeQuerySet, type RankSource } from '../../src/eval/robust/index.js';

describe('catalogue', () => {
  it('every attack describes itself: recipe, threat model, modalities', () => {
    for (const [name, info] of Object.entries(PROBE_ATTACKS)) {
      expect(info.modalities.length, name).toBeGreaterThan(0);
      expect(['white-box', 'transfer', 'black-box']).toContain(info.threatModel);
      expect(name.startsWith('transfer-')).toBe(info.threatModel === 'transfer');
    }
  });

  it('a knob an attack does not take is refused, naming it; budgets convert from /255 once', () => {
    const bad = probeAttackSpecSchema.safeParse({ name: 'text', eps: 4 });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]).toMatchObject({ path: ['eps'], message: expect.stringMatching(/text takes no eps/) });
    expect(probeAttackSpecSchema.safeParse({ name: 'pgd', eps: 4, typo: 1 }).success).toBe(false);
    expect(recipeOptions({ name: 'pgd', eps: 4, steps: 10 }, 7)).toEqual({ seed: 7, eps: 4 / 255, stepSize: 1 / 255, steps: 10 });
    expect(recipeOptions({ name: 'pgd', eps: 0.5 }, 0).stepSize).toBeCloseTo(0.25 / 255, 12);
    expect(recipeOptions({ name: 'transfer-pgd', eps: 2, eot: true }, 0, { eotJpegQuality: 85 }).eotJpegQuality).toBe(85);
    expect(recipeOptions({ name: 'blackbox-image', eps: 2, maxQueries: 50 }, 0)).toEqual({ seed: 0, eps: 2 / 255, maxQueries: 50 });
  });

  it('a CLI list gets each shared budget only where it applies; an unknown name is named', () => {
    expect(specsFromList('pgd, text ,blackbox-text', { eps: 4, steps: 3, maxQueries: 9 })).toEqual([
      { name: 'pgd', eps: 4, steps: 3 },
      { name: 'text' },
      { name: 'blackbox-text', maxQueries: 9 },
    ]);
    expect(() => specsFromList('pgd,fgsm', {})).toThrow(/unknown attack 'fgsm'/);
  });

  it('a suite is checked against what the probe can reach, before any work', () => {
    const remote = { source: 'remote' as const, whiteBox: false, surrogate: false, jpeg: false };
    expect(() => checkSuite([{ name: 'blackbox-text' }, { name: 'sga' }], remote)).toThrow(/attacks\[1\] \(sga\) is white-box.*transfer-sga/);
    expect(() => checkSuite([{ name: 'transfer-pgd' }], remote)).toThrow(/surrogate/);
    expect(() => checkSuite([{ name: 'transfer-pgd', eot: true }], { ...remote, surrogate: true })).toThrow(/JPEG/);
    expect(() => checkSuite([{ name: 'pgd' }, { name: 'pgd' }], { ...remote, whiteBox: true })).toThrow(/listed twice/);
    expect(() => checkSuite([{ name: 'transfer-pgd' }], { source: 'live-index', whiteBox: true, surrogate: false, jpeg: false })).toThrow(/manyfold probe --target/);
    expect(() => checkSuite([{ name: 'pgd' }, { name: 'transfer-pgd', eot: true }], { ...remote, whiteBox: true, surrogate: true, jpeg: true })).not.toThrow();
  });
});

describe('rank metrics', () => {
  it('failed measurements are counted apart, never as hits or misses', () => {
    const f = recallFigures([0, 3, null, 12], [1, 5, 10], { seed: 0, resamples: 200 });
    expect(f.n).toBe(3);
    expect(f.failed).toBe(1);
    expect(f.recall.r1.mean).toBeCloseTo(100 / 3, 10);
    expect(f.recall.r5.mean).toBeCloseTo(200 / 3, 10);
    expect(recallFigures([null], [1], { seed: 0, resamples: 10 }).recall).toEqual({});
  });

  it('ASR counts clean hits turned into misses; the worst case keeps the worse measured rank', () => {
    expect(successRate([0, 0, 0, 4, null], [0, 2, null, 9, 0], 1)).toEqual({ asr: 50, base: 2 });
    expect(successRate([3], [5], 1)).toEqual({ asr: 0, base: 0 });
    expect(worstCase([
      [0, null, 2],
      [1, 4, null],
    ])).toEqual([1, 4, 2]);
  });
});

describe('runner over a loader of query images (large probes)', () => {
  const S = 2;
  const per = S * S * 3;
  /** a rank source whose answer for an image query is the id written in its first pixel */
  const source: RankSource = {
    kind: 'remote',
    name: 'fake',
    imageTransport: 'raw',
    searchImage: async (rgb) => [{ id: `item${rgb[0]}` }],
    searchText: async (text) => [{ id: text.replace('caption of ', '') }],
  };
  const queries = (images: ProbeQuerySet['images'], n: number): ProbeQuerySet => ({
    size: S,
    images,
    ids: Array.from({ length: n }, (_, i) => `item${i}`),
    captions: Array.from({ length: n }, (_, i) => `caption of item${i}`),
    captionToImage: Array.from({ length: n }, (_, i) => i),
    origin: 'synthetic',
  });

  it('asks for one chunk of images at a time and measures the same ranks as with the images in memory', async () => {
    const n = 40;
    const all = new Uint8Array(n * per);
    for (let i = 0; i < n; i++) all[i * per] = i;
    const asked: [number, number][] = [];
    const loader = async (first: number, count: number) => (asked.push([first, count]), all.slice(first * per, (first + count) * per));
    const lazy = await runRobustProbe({ source, queries: queries(loader, n), attacks: [], chunkImages: 16, resamples: 100 });
    const held = await runRobustProbe({ source, queries: queries(all, n), attacks: [], chunkImages: 16, resamples: 100 });
    expect(asked).toEqual([[0, 16], [16, 16], [32, 8]]);
    expect(lazy.clean).toEqual(held.clean);
    expect(lazy.clean.tr.recall.r1.mean).toBe(100);
  });

  it('a loader that returns the wrong number of values is named, not trusted', async () => {
    await expect(runRobustProbe({ source, queries: queries(async () => new Uint8Array(5), 3), attacks: [], resamples: 100 })).rejects.toThrow(/loader gave 5 values for rows 0\.\.2/);
  });
});
