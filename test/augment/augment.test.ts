import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import {
  alignmentFilter,
  buildAugmentPool,
  edaAugmenter,
  edaEdits,
  edaOnce,
  flipAugmenter,
  flipHorizontal,
  flipLeftRight,
  hasLeftRight,
  httpProvider,
  misalignedFlipAugmenter,
  prepareProviderCache,
  ProviderCache,
  resolveAugmentNames,
  sampleAugmentedBatch,
  scenesOracleProvider,
  swappedCaptionsAugmenter,
  SynonymTable,
  type Pair,
  type PairScorer,
} from '../../src/augment/index.js';
import { splitWords, wordsOf } from '../../src/attacks/util/words.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { sceneKey } from '../../src/data/scenes/match.js';
import { Rng } from '../../src/util/rng.js';

let dir: string;
let split: DatasetSplit;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mf-augment-'));
  const g = await generateScenes({ out: join(dir, 'scenes'), train: 24, val: 0, test: 0, seed: 5 });
  split = await loadDataset(g.file, { size: 16, split: 'train', cacheDir: join(dir, 'cache') });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pairOf = (s: DatasetSplit, i: number): Pair => {
  const per = s.size * s.size * 3;
  const caps = s.imageToCaptions[i].map((c) => s.captions[c]);
  return { source: i, image: s.images.slice(i * per, (i + 1) * per), size: s.size, captions: caps, origins: caps.map(() => 'gt'), view: 'orig', scene: s.scenes?.[i] };
};

describe('EDA', () => {
  it('changes at most n words per variant and only inserts / substitutes WordNet synonyms of the caption words', async () => {
    const syn = await SynonymTable.build(split.captions);
    expect(syn.size).toBeGreaterThan(5);
    const rng = new Rng(1);
    for (const caption of split.captions.slice(0, 30)) {
      const words = wordsOf(splitWords(caption));
      const n = edaEdits(words.length, 0.1);
      const synonymsOf = new Set(words.flatMap((w) => syn.synonyms(w).map((x) => x.toLowerCase())));
      for (const op of ['sr', 'ri', 'rs', 'rd'] as const) {
        const v = edaOnce(caption, op, n, syn, rng);
        const vw = wordsOf(splitWords(v));
        if (op === 'sr') {
          expect(vw.length).toBe(words.length);
          const changed = vw.map((w, i) => [w, words[i]] as const).filter(([a, b]) => a !== b);
          expect(changed.length).toBeLessThanOrEqual(n);
          for (const [w, orig] of changed) expect(syn.synonyms(orig)).toContain(w);
        } else if (op === 'ri') {
          expect(vw.length - words.length).toBeLessThanOrEqual(n);
          // the multiset difference is made of WordNet synonyms of the caption's words
          const left = words.map((w) => w.toLowerCase());
          for (const w of vw.map((x) => x.toLowerCase())) {
            const k = left.indexOf(w);
            if (k >= 0) left.splice(k, 1);
            else expect(synonymsOf.has(w)).toBe(true);
          }
        } else if (op === 'rs') {
          expect([...vw].sort()).toEqual([...words].sort());
          expect(vw.filter((w, i) => w !== words[i]).length).toBeLessThanOrEqual(2 * n);
        } else {
          expect(words.length - vw.length).toBeLessThanOrEqual(n);
          expect(vw.every((w) => words.includes(w))).toBe(true);
        }
      }
    }
  });

  it('never edits protected spatial words by synonym replacement or deletion', () => {
    const syn = SynonymTable.from({ left: ['leave'], right: ['correct'], circle: ['ring'], red: ['crimson'] });
    const rng = new Rng(3);
    for (let k = 0; k < 50; k++) {
      for (const op of ['sr', 'rd'] as const) {
        const v = edaOnce('a red circle to the left of a blue square on the right', op, 2, syn, rng);
        expect(v).toMatch(/\bleft\b/);
        expect(v).toMatch(/\bright\b/);
      }
    }
  });

  it('the augmenter returns new captions for the same image', async () => {
    const syn = await SynonymTable.build(split.captions);
    const p = pairOf(split, 0);
    const out = edaAugmenter(syn, { variants: 3 }).augment(p, new Rng(2));
    expect(out.length).toBe(1);
    expect(out[0].image).toBe(p.image);
    expect(out[0].captions.length).toBeGreaterThan(0);
    expect(out[0].origins.every((o) => o === 'eda')).toBe(true);
    for (const c of out[0].captions) expect(p.captions).not.toContain(c);
  });
});

describe('flip rule', () => {
  it('swaps left and right in the captions of the flipped image, keeps other captions', () => {
    expect(flipLeftRight('a star to the left of a cross, the cross on the Right')).toBe('a star to the right of a cross, the cross on the Left');
    expect(flipLeftRight('the leftmost circle')).toBe('the rightmost circle');
    expect(hasLeftRight('a red circle above a blue square')).toBe(false);
    const p: Pair = { source: 0, image: Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i), size: 4, captions: ['a star left of a cross', 'a circle above a square'], origins: ['gt', 'gt'], view: 'orig' };
    const [f] = flipAugmenter().augment(p, new Rng(0));
    expect(f.captions).toEqual(['a star right of a cross', 'a circle above a square']);
    expect(f.image).toEqual(flipHorizontal(p.image, 4));
    expect(flipHorizontal(f.image, 4)).toEqual(p.image);
    // first pixel of row 0 is the last pixel of row 0 of the original
    expect(Array.from(f.image.slice(0, 3))).toEqual(Array.from(p.image.slice(9, 12)));
  });
});

describe('misaligned control', () => {
  it('the flip keeps left/right captions unchanged and swapped captions come from other images', () => {
    const p: Pair = { source: 1, image: new Uint8Array(4 * 4 * 3).fill(7), size: 4, captions: ['a star left of a cross'], origins: ['gt'], view: 'orig' };
    const [f] = misalignedFlipAugmenter().augment(p, new Rng(0));
    expect(f.captions).toEqual(['a star left of a cross']);
    const sourceCaptions = split.imageToCaptions.map((cs) => cs.map((c) => split.captions[c]));
    const q = pairOf(split, 3);
    const [s] = swappedCaptionsAugmenter(sourceCaptions, 2).augment(q, new Rng(4));
    expect(s.captions.length).toBe(2);
    for (const c of s.captions) {
      expect(sourceCaptions[3]).not.toContain(c);
      // the caption belongs to an image whose scene differs from this one
      const owner = sourceCaptions.findIndex((cs) => cs.includes(c));
      expect(sceneKey(split.scenes![owner]!)).not.toBe(sceneKey(split.scenes![3]!));
    }
  });
});

describe('pool and sampling', () => {
  it('resolves nn to what the data supports', () => {
    expect(resolveAugmentNames(['nn'], { hasScenes: false, hasCache: false })).toEqual(['eda', 'siblings', 'basic', 'flip']);
    expect(resolveAugmentNames(['nn'], { hasScenes: true, hasCache: false })).toEqual(['eda', 'siblings', 'oracle-caption', 'basic', 'flip', 'oracle-image']);
    expect(() => resolveAugmentNames(['cross'], { hasScenes: false, hasCache: false })).toThrow(/scene graphs|cache/);
    expect(() => resolveAugmentNames(['misaligned', 'flip'], { hasScenes: true, hasCache: false })).toThrow(/misaligned/);
  });

  it('nn works on a plain Karpathy set without scene graphs or cache (EDA, siblings, basic, flip)', async () => {
    const plain = await loadDataset(join(import.meta.dirname, '..', 'fixtures', 'data', 'karpathy_small.json'), { size: 16, split: 'train', cacheDir: join(dir, 'cache2') });
    expect(plain.scenes).toBeUndefined();
    const pool = await buildAugmentPool(plain, ['nn'], { seed: 0 });
    expect(pool.names).toEqual(['eda', 'siblings', 'basic', 'flip']);
    expect(pool.stats.views.basic).toBe(2 * plain.count);
    expect(pool.stats.views.flip).toBe(plain.count);
  });

  it('builds the same pool from the same seed; oracle views keep the scene; a step batch has 1 image and k+extra captions per row', async () => {
    const a = await buildAugmentPool(split, ['nn'], { seed: 1 });
    const b = await buildAugmentPool(split, ['nn'], { seed: 1 });
    expect(a.names).toContain('oracle-caption');
    expect(a.sources.length).toBe(split.count);
    for (let s = 0; s < split.count; s++) {
      expect(a.sources[s].views.length).toBe(b.sources[s].views.length);
      a.sources[s].views.forEach((v, k) => {
        expect(v.captions).toEqual(b.sources[s].views[k].captions);
        expect(Buffer.compare(Buffer.from(v.image), Buffer.from(b.sources[s].views[k].image))).toBe(0);
        expect(v.captions.length).toBe(a.sources[s].views[0].captions.length);
      });
    }
    expect(a.stats.views['oracle-image']).toBe(2 * split.count);
    const rows = Int32Array.from([0, 1, 2, 3]);
    const batch = sampleAugmentedBatch(a, rows, 2, 1, 0.5, new Rng(9));
    expect(batch.images.length).toBe(4);
    for (let r = 0; r < 4; r++) {
      const own = batch.origins.filter((_, i) => batch.owner[i] === r);
      expect(own.filter((o) => o === 'gt').length).toBe(2);
      expect(own.length).toBeLessThanOrEqual(3);
    }
    const again = sampleAugmentedBatch(a, rows, 2, 1, 0.5, new Rng(9));
    expect(again.captions).toEqual(batch.captions);
    expect(again.views).toEqual(batch.views);
  });

  it('alignment filter keeps pairs above the ground-truth quantile and reports the counts', async () => {
    const S = 2;
    const img = (v: number) => new Uint8Array(S * S * 3).fill(v);
    // a scorer in which image value v and caption "c<v>" embed to the same direction
    const dirOf = (v: number) => {
      const a = (v / 255) * Math.PI;
      return [Math.cos(a), Math.sin(a)];
    };
    const scorer: PairScorer = {
      dim: 2,
      embedImagesMatrix: async (pixels, n) => Float32Array.from(Array.from({ length: n }, (_, i) => dirOf(pixels[i * S * S * 3])).flat()),
      embedTextsMatrix: async (texts) => Float32Array.from(texts.map((t) => dirOf(Number(t.slice(1)))).flat()),
    };
    // ground-truth captions are 5 and 8 units away from their images: the 0.05 quantile is the 8-unit cosine
    const mk = (v: number, gtOff: number, extra: [string, string][], views: number[]): { views: Pair[] } => {
      const base: Pair = { source: v, image: img(v), size: S, captions: [`c${v + gtOff}`, ...extra.map((e) => e[0])], origins: ['gt', ...extra.map((e) => e[1])], view: 'orig' };
      return { views: [base, ...views.map((w, k) => ({ ...base, image: img(w), view: `basic#${k}` }))] };
    };
    const sources = [mk(10, 5, [['c12', 'eda'], ['c200', 'eda']], [11, 250]), mk(100, 8, [['c101', 'oracle-caption']], [102, 120])];
    const rep = await alignmentFilter(sources, scorer, 0.05);
    expect(rep.threshold).toBeCloseTo(Math.cos((8 / 255) * Math.PI), 5);
    expect(rep.captions.eda).toEqual({ generated: 2, kept: 1 });
    expect(rep.captions['oracle-caption']).toEqual({ generated: 1, kept: 1 });
    expect(rep.views.basic).toEqual({ generated: 4, kept: 2 });
    expect(sources[0].views[0].captions).toEqual(['c15', 'c12']);
    expect(sources[0].views.length).toBe(2);
    expect(sources[0].views[1].captions).toEqual(['c15', 'c12']);
    expect(sources[1].views.length).toBe(2);
  });
});

describe('providers', () => {
  let server: Server;
  let base: string;
  const hits: string[] = [];

  beforeAll(async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        hits.push(`${req.method} ${req.url}`);
        const json = JSON.parse(body) as { messages?: { content: unknown }[]; n?: number; prompt?: string };
        res.setHeader('content-type', 'application/json');
        if (req.url === '/v1/chat/completions') {
          const content = json.messages![0].content;
          const isImage = Array.isArray(content) && content.some((c: { type: string; image_url?: { url: string } }) => c.type === 'image_url' && c.image_url!.url.startsWith('data:image/png;base64,'));
          const n = json.n ?? 1;
          res.end(JSON.stringify({ choices: Array.from({ length: n }, (_, i) => ({ message: { content: isImage ? `"A generated caption number ${hits.length}-${i}."` : `a paraphrase ${hits.length}-${i}` } })) }));
        } else if (req.url === '/v1/images/generations') {
          res.end(JSON.stringify({ data: [{ b64_json: png.toString('base64') }] }));
        } else {
          res.statusCode = 404;
          res.end('{}');
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}/v1`;
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('prepare writes the HTTP provider outputs to a cache; training-time pool building only reads it', async () => {
    const small: DatasetSplit = { ...split, count: 3, imageIds: split.imageIds.slice(0, 3), imageToCaptions: split.imageToCaptions.slice(0, 3), images: split.images.subarray(0, 3 * 16 * 16 * 3) };
    const out = join(dir, 'cache.json');
    const r = await prepareProviderCache({ split: small, provider: httpProvider({ baseUrl: base, captionModel: 'cap', imageModel: 'gen' }), out, data: 'x', captions: 2, images: 1, paraphrases: 1 });
    expect(r.counts.captions).toBe(6);
    expect(r.counts.images).toBe(3);
    expect(r.counts.paraphrases).toBeGreaterThan(0);
    expect(hits.some((h) => h === 'POST /v1/images/generations')).toBe(true);
    const cache = ProviderCache.read(out);
    expect(cache.captions(small.imageIds[0])[0]).toMatch(/^a generated caption number/);
    const im = cache.images(small.imageIds[0], 16)[0];
    expect(im.length).toBe(16 * 16 * 3);
    expect(im[0]).toBeGreaterThan(150); // the stub's red image, resized

    const before = readFileSync(out);
    const mtime = statSync(out).mtimeMs;
    const nHits = hits.length;
    const pool = await buildAugmentPool(small, ['provider-caption', 'provider-image', 'paraphrase'], { seed: 0, cache });
    expect(pool.stats.captions['provider-caption']).toBe(6);
    expect(pool.stats.views['provider-image']).toBe(3);
    expect(hits.length).toBe(nHits); // no network during training
    expect(statSync(out).mtimeMs).toBe(mtime);
    expect(Buffer.compare(readFileSync(out), before)).toBe(0);
  });

  it('the scenes oracle provider behind the same interface; prepare resumes a partial cache', async () => {
    const out = join(dir, 'oracle.json');
    const r1 = await prepareProviderCache({ split, provider: scenesOracleProvider(), out, data: 'x', captions: 2, images: 1 });
    expect(r1.counts.captions).toBeGreaterThan(split.count);
    expect(r1.counts.images).toBe(split.count);
    const r2 = await prepareProviderCache({ split, provider: scenesOracleProvider(), out, data: 'x', captions: 2, images: 1 });
    expect(r2.skipped).toBe(split.count);
    writeFileSync(join(dir, 'bad.json'), '{"format":"nope"}');
    expect(() => ProviderCache.read(join(dir, 'bad.json'))).toThrow(/unknown format/);
  });
});
