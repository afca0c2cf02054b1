import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { computeRecall, matchesFromKeys, summarizeRecall, topK, type GroundTruth } from '../../src/eval/recall.js';
import { Rng } from '../../src/util/rng.js';

/** 3 images x 6 captions: captions 2i, 2i+1 belong to image i */
const gt3: GroundTruth = {
  captionToImage: Int32Array.from([0, 0, 1, 1, 2, 2]),
  imageToCaptions: [
    [0, 1],
    [2, 3],
    [4, 5],
  ],
};

/** Reference: full sort with the documented pessimistic tie rule (non-relevant before relevant on equal score). */
function refRank(scores: number[], relevant: boolean[]): number {
  const s = scores.map((x) => (Number.isNaN(x) ? -Infinity : x));
  const order = s.map((_, j) => j).sort((a, b) => s[b] - s[a] || Number(relevant[a]) - Number(relevant[b]) || a - b);
  return order.findIndex((j) => relevant[j]);
}

function reference(sims: ArrayLike<number>, nI: number, nT: number, gt: GroundTruth, match?: (a: number, b: number) => boolean) {
  const m = (a: number, b: number): boolean => a === b || (match ? match(a, b) : false);
  const tr: number[] = [];
  const ir: number[] = [];
  for (let i = 0; i < nI; i++) {
    const row = Array.from({ length: nT }, (_, t) => sims[i * nT + t]);
    tr.push(refRank(row, row.map((_, t) => m(i, gt.captionToImage[t]))));
  }
  for (let t = 0; t < nT; t++) {
    const col = Array.from({ length: nI }, (_, i) => sims[i * nT + t]);
    ir.push(refRank(col, col.map((_, i) => m(gt.captionToImage[t], i))));
  }
  return { tr, ir };
}

describe('computeRecall', () => {
  it('hand-built matrix with multi-caption ground truth', () => {
    // rows: images; columns: captions 0..5
    const sims = Float32Array.from([
      // image 0: best caption is 1 (gold) -> rank 0
      0.1, 0.9, 0.5, 0.2, 0.3, 0.0,
      // image 1: captions 0 and 4 score above both golds (2: 0.6, 3: 0.3) -> rank 2
      0.8, 0.1, 0.6, 0.3, 0.7, 0.0,
      // image 2: golds 4 (0.05), 5 (0.1); all 4 others higher -> rank 4
      0.5, 0.4, 0.3, 0.2, 0.05, 0.1,
    ]);
    const r = computeRecall(sims, 3, 6, gt3, { ks: [1, 3, 5] });
    expect(Array.from(r.tr.rank)).toEqual([0, 2, 4]);
    expect(r.tr.recall[1]).toBeCloseTo(100 / 3);
    expect(r.tr.recall[3]).toBeCloseTo(200 / 3);
    expect(r.tr.recall[5]).toBe(100);
    expect(Array.from(r.tr.hits[3])).toEqual([1, 1, 0]);
    // IR: caption t column; gold image = t>>1
    // col0 [0.1,0.8,0.5] gold 0 -> rank 2; col1 [0.9,0.1,0.4] -> 0; col2 [0.5,0.6,0.3] gold 1 -> 0;
    // col3 [0.2,0.3,0.2] -> 0; col4 [0.3,0.7,0.05] gold 2 -> 2; col5 [0,0,0.1] -> 0
    expect(Array.from(r.ir.rank)).toEqual([2, 0, 0, 0, 2, 0]);
    expect(r.ir.recall[1]).toBeCloseTo((4 / 6) * 100);
    expect(r.ir.recall[3]).toBe(100);
    expect(r.rsum).toBeCloseTo(r.tr.recall[1] + r.tr.recall[3] + r.tr.recall[5] + r.ir.recall[1] + r.ir.recall[3] + r.ir.recall[5]);
    expect(summarizeRecall(r)).toEqual({
      tr: { R1: 33.33, R3: 66.67, R5: 100 },
      ir: { R1: 66.67, R3: 100, R5: 100 },
      rsum: 466.67,
    });
  });

  it('ties are pessimistic: an equal-scoring wrong item ranks ahead of the gold one', () => {
    const flat = new Float32Array(18).fill(0.5);
    const r = computeRecall(flat, 3, 6, gt3);
    expect(Array.from(r.tr.rank)).toEqual([4, 4, 4]); // all 4 non-gold captions tie ahead
    expect(Array.from(r.ir.rank)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(r.tr.recall[1]).toBe(0);
    expect(r.tr.recall[5]).toBe(100);
    expect(r.ir.recall[1]).toBe(0);

    // gold captions tying with each other do not push each other down
    const sims = Float32Array.from([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(computeRecall(sims, 3, 6, gt3).tr.rank[0]).toBe(0);
    // one non-gold caption ties with the best gold -> rank 1
    sims[2] = 0.9;
    expect(computeRecall(sims, 3, 6, gt3).tr.rank[0]).toBe(1);
  });

  it('NaN scores rank last', () => {
    const sims = new Float32Array(18).fill(0);
    sims.fill(Number.NaN, 0, 6); // image 0 row all NaN
    sims[1] = 1; // gold caption 1 for image 0
    const r = computeRecall(sims, 3, 6, gt3);
    expect(r.tr.rank[0]).toBe(0);
    sims[1] = Number.NaN;
    sims[3] = -5;
    expect(computeRecall(sims, 3, 6, gt3).tr.rank[0]).toBe(4); // NaN gold: everything non-gold ahead
  });

  it('semantic recall counts retrieved items whose image has the same scene', () => {
    // images 0 and 2 show the same scene
    const matches = matchesFromKeys(['sceneA', 'sceneB', 'sceneA']);
    const sims = Float32Array.from([
      // image 0 prefers captions of image 2 (same scene): exact rank 2, semantic rank 0
      0.1, 0.2, 0.0, 0.0, 0.9, 0.8,
      // image 1 prefers image 0's captions: exact rank 2, semantic rank 2
      0.9, 0.8, 0.5, 0.4, 0.0, 0.0,
      // image 2: its own captions on top
      0.0, 0.0, 0.0, 0.0, 0.7, 0.6,
    ]);
    const r = computeRecall(sims, 3, 6, gt3, { ks: [1, 2], matches });
    expect(Array.from(r.tr.rank)).toEqual([2, 2, 0]);
    expect(Array.from(r.semantic!.tr.rank)).toEqual([0, 2, 0]);
    expect(r.semantic!.tr.recall[1]).toBeCloseTo(200 / 3);
    // IR caption 4 (image 2): column [0.9, 0, 0.7] -> exact rank 1, semantic rank 0 (image 0 is sceneA too)
    expect(r.ir.rank[4]).toBe(1);
    expect(r.semantic!.ir.rank[4]).toBe(0);
    // semantic is never worse than exact
    for (let q = 0; q < 3; q++) expect(r.semantic!.tr.rank[q]).toBeLessThanOrEqual(r.tr.rank[q]);
    for (let q = 0; q < 6; q++) expect(r.semantic!.ir.rank[q]).toBeLessThanOrEqual(r.ir.rank[q]);
    // a predicate that matches nothing gives exactly the exact recall
    const none = computeRecall(sims, 3, 6, gt3, { matches: () => false });
    expect(Array.from(none.semantic!.tr.rank)).toEqual(Array.from(none.tr.rank));
    expect(Array.from(none.semantic!.ir.rank)).toEqual(Array.from(none.ir.rank));
  });

  it('property: matches a full-sort reference on random matrices with many ties', () => {
    const arb = fc
      .record({
        nI: fc.integer({ min: 1, max: 6 }),
        perImage: fc.integer({ min: 1, max: 3 }),
        levels: fc.integer({ min: 1, max: 4 }),
        seed: fc.integer({ min: 0, max: 1e6 }),
        withScenes: fc.boolean(),
      })
      .map(({ nI, perImage, levels, seed, withScenes }) => {
        const rng = new Rng(seed);
        const captionToImage: number[] = [];
        const imageToCaptions: number[][] = Array.from({ length: nI }, () => []);
        // shuffled caption order so captions of one image are not contiguous
        const owners = rng.shuffle(Array.from({ length: nI * perImage }, (_, k) => k % nI));
        owners.forEach((img, t) => {
          captionToImage.push(img);
          imageToCaptions[img].push(t);
        });
        const nT = captionToImage.length;
        const sims = Float32Array.from({ length: nI * nT }, () => rng.int(levels) / levels);
        const keys = Array.from({ length: nI }, () => (withScenes ? rng.int(2) : undefined));
        return { nI, nT, sims, gt: { captionToImage, imageToCaptions }, keys };
      });
    fc.assert(
      fc.property(arb, ({ nI, nT, sims, gt, keys }) => {
        const matches = matchesFromKeys(keys);
        const r = computeRecall(sims, nI, nT, gt, { matches });
        const exact = reference(sims, nI, nT, gt);
        const sem = reference(sims, nI, nT, gt, matches);
        expect(Array.from(r.tr.rank)).toEqual(exact.tr);
        expect(Array.from(r.ir.rank)).toEqual(exact.ir);
        expect(Array.from(r.semantic!.tr.rank)).toEqual(sem.tr);
        expect(Array.from(r.semantic!.ir.rank)).toEqual(sem.ir);
        for (const k of r.ks) {
          expect(r.tr.recall[k]).toBeCloseTo((100 * exact.tr.filter((x) => x < k).length) / nI);
          expect(r.ir.recall[k]).toBeCloseTo((100 * exact.ir.filter((x) => x < k).length) / nT);
        }
      }),
      { numRuns: 300, seed: 1 },
    );
  });

  it('validates shapes and ground truth with clear errors', () => {
    const sims = new Float32Array(18);
    expect(() => computeRecall(sims, 3, 5, gt3)).toThrow(/has 18 entries, expected 3 x 5/);
    expect(() => computeRecall(sims, 3, 6, { ...gt3, captionToImage: [0, 0, 1, 1, 2, 7] })).toThrow(/captionToImage\[5\] = 7/);
    expect(() => computeRecall(sims, 3, 6, { ...gt3, imageToCaptions: [[0, 1], [2, 3], []] })).toThrow(/image 2 has no ground-truth caption/);
    expect(() => computeRecall(sims, 3, 6, { ...gt3, imageToCaptions: [[0, 1], [2, 3], [4, 1]] })).toThrow(/inconsistent/);
    expect(() => computeRecall(sims, 3, 6, { ...gt3, imageToCaptions: [[0, 0], [2, 3], [4, 5]] })).toThrow(/listed twice/);
    expect(() => computeRecall(sims, 3, 6, { ...gt3, imageToCaptions: [[0], [2, 3], [4, 5]] })).toThrow(/caption 1 .* is missing/);
    expect(() => computeRecall(sims, 3, 6, gt3, { ks: [0] })).toThrow(/K must be a positive integer/);
  });

  it('is fast on 1,000 images x 5,000 captions', () => {
    const nI = 1000;
    const nT = 5000;
    const rng = new Rng(5);
    const sims = new Float32Array(nI * nT);
    for (let k = 0; k < sims.length; k++) sims[k] = rng.next();
    const captionToImage = Int32Array.from({ length: nT }, (_, t) => Math.floor(t / 5));
    const imageToCaptions = Array.from({ length: nI }, (_, i) => [5 * i, 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4]);
    const t0 = performance.now();
    const r = computeRecall(sims, nI, nT, { captionToImage, imageToCaptions });
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(2000);
    // random scores: R@K ~ chance; TR chance at K=10 is ~ 1-(1-10/5000)^5 ~ 1%, IR ~ 1%
    expect(r.tr.recall[10]).toBeLessThan(5);
    expect(r.ir.recall[10]).toBeLessThan(5);
  });
});

describe('topK', () => {
  it('matches a full sort (score desc, index asc on ties), on rows and columns', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 40 }), fc.integer({ min: 0, max: 12 }), (xs, k) => {
        const { index, score } = topK(xs, xs.length, k);
        const expected = xs
          .map((s, j) => ({ s, j }))
          .sort((a, b) => b.s - a.s || a.j - b.j)
          .slice(0, k);
        expect(Array.from(index)).toEqual(expected.map((e) => e.j));
        expect(Array.from(score)).toEqual(expected.map((e) => e.s));
      }),
      { numRuns: 300, seed: 3 },
    );
    // a column of a 3 x 2 row-major matrix
    const m = [1, 9, 2, 7, 3, 8];
    expect(Array.from(topK(m, 3, 2, 1, 2).index)).toEqual([0, 2]);
    expect(Array.from(topK([Number.NaN, 1, 0], 3, 3).index)).toEqual([1, 2, 0]);
  });
});
