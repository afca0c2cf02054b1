import { describe, it, expect, beforeAll } from 'vitest';
import { attackByName, localOracle, judgeHits, embedTextRows, embedImageRows, type ScoreOracle } from '../../src/attacks/index.js';
import { fixture } from './helpers.js';
import { useCpu } from './setup.js';

beforeAll(useCpu);

const f = fixture({ nImages: 4, size: 8, dim: 16 });
const E = f.encoder.config.embedDim;

/** an oracle that counts every query it answers */
function counted(o: ScoreOracle): { oracle: ScoreOracle; count: () => number } {
  let n = 0;
  return {
    oracle: async (q) => {
      n += q.length;
      return o(q);
    },
    count: () => n,
  };
}

describe('black-box attacks', () => {
  it('judgeHits: rank, success and score from ranked ids', () => {
    const hits = [{ id: 'a', score: 0.9 }, { id: 'b', score: 0.8 }, { id: 'c', score: 0.1 }];
    expect(judgeHits(hits, new Set(['a']), 1)).toMatchObject({ rank: 0, success: false });
    expect(judgeHits(hits, new Set(['b']), 1)).toMatchObject({ rank: 1, success: true });
    expect(judgeHits(hits, new Set(['z']), 3)).toMatchObject({ rank: 3, success: true });
    // the gold is not in a 3-long list but k = 5: unknown, judged conservatively as not (yet) a success
    expect(judgeHits(hits, new Set(['z']), 5)).toMatchObject({ rank: 3, success: false });
    expect(judgeHits(hits, new Set(['b']), 1).score).toBeGreaterThan(judgeHits(hits, new Set(['a']), 1).score);
    expect(judgeHits(hits.map((h) => ({ id: h.id })), new Set(['c']), 1).score).toBe(2);
  });

  it('image Square search: respects the query budget and eps, and counts every query', async () => {
    const gallery = await embedTextRows(f.encoder, f.tokenizer, f.captions);
    const c = counted(localOracle({ encoder: f.encoder, tokenizer: f.tokenizer, gallery, topK: 5 }));
    const imageGoldIds = Array.from({ length: f.nImages }, (_, i) => [2 * i, 2 * i + 1]);
    const maxQueries = 25;
    const eps = 8 / 255;
    const r = await attackByName('blackbox-image', { eps, maxQueries, seed: 1 }).run(
      { images: f.images, size: f.size, targets: { k: 1, imageGoldIds } },
      { oracle: c.oracle },
    );
    const img = r.images!;
    expect(img.queries.every((q) => q >= 1 && q <= maxQueries)).toBe(true);
    expect(r.queries).toBe(c.count());
    expect(r.queries).toBe(img.queries.reduce((a, b) => a + b));
    expect(img.linf.every((v) => v <= eps + 1e-6)).toBe(true);
    expect(Math.min(...img.data)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...img.data)).toBeLessThanOrEqual(1);
    // items that did not succeed spent the full budget
    img.success.forEach((s, i) => s || expect(img.queries[i]).toBe(maxQueries));
    // reproducible
    const c2 = counted(localOracle({ encoder: f.encoder, tokenizer: f.tokenizer, gallery, topK: 5 }));
    const r2 = await attackByName('blackbox-image', { eps, maxQueries, seed: 1 }).run({ images: f.images, size: f.size, targets: { k: 1, imageGoldIds } }, { oracle: c2.oracle });
    expect(Buffer.from(r2.images!.data.buffer).equals(Buffer.from(img.data.buffer))).toBe(true);
  });

  it('text greedy search: respects the query budget and counts every query', async () => {
    const gallery = await embedImageRows(f.encoder, f.images, f.nImages, f.size);
    const captionGoldIds = f.captionToImage.map((i) => [`img${i}`]);
    const ids = Array.from({ length: f.nImages }, (_, i) => `img${i}`);
    for (const maxQueries of [3, 8, 60]) {
      const c = counted(localOracle({ encoder: f.encoder, tokenizer: f.tokenizer, gallery, ids, topK: 3 }));
      const env = { oracle: c.oracle };
      const r = await attackByName('blackbox-text', { maxQueries, seed: 2 }).run({ captions: f.captions, targets: { k: 1, captionGoldIds } }, env);
      const t = r.captions!;
      expect(t.queries.every((q) => q <= maxQueries)).toBe(true);
      expect(r.queries).toBe(c.count());
      expect(t.wordsChanged.every((w) => w <= 1)).toBe(true);
      expect(r.threatModel).toBe('black-box');
      // success is what the oracle says about the final caption
      const final = await localOracle({ encoder: f.encoder, tokenizer: f.tokenizer, gallery, ids, topK: 3 })(t.texts.map((text) => ({ kind: 'text' as const, text })));
      final.forEach((h, i) => {
        const j = judgeHits(h, new Set(captionGoldIds[i]), 1);
        if (t.success[i]) expect(j.success).toBe(true);
      });
    }
  });

  it('text: char-edit transformation and rank-only oracles work too', async () => {
    const gallery = await embedImageRows(f.encoder, f.images, f.nImages, f.size);
    const c = counted(localOracle({ encoder: f.encoder, tokenizer: f.tokenizer, gallery, topK: 4, withScores: false }));
    const r = await attackByName('blackbox-text', { transformation: 'charedit', maxQueries: 30, seed: 2 }).run(
      { captions: f.captions, targets: { k: 1, captionGoldIds: f.captionToImage.map((i) => [i]) } },
      { oracle: c.oracle },
    );
    expect(r.queries).toBe(c.count());
    expect(r.captions!.queries.every((q) => q <= 30)).toBe(true);
  });

  it('fail clearly without an oracle or gold ids', async () => {
    await expect(attackByName('blackbox-image').run({ images: f.images, size: f.size, targets: { imageGoldIds: [[0], [1], [2], [3]] } }, {})).rejects.toThrow(/env.oracle/);
    await expect(attackByName('blackbox-text').run({ captions: f.captions }, { oracle: async () => [] })).rejects.toThrow(/captionGoldIds/);
  });
});
