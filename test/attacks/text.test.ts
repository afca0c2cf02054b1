import { describe, it, expect, beforeAll } from 'vitest';
import {
  attackByName,
  WordNetSynonymSwap,
  CharEditTransformation,
  editDistance,
  isStopWord,
  ENGLISH_STOP_WORDS,
  sameMorphology,
} from '../../src/attacks/index.js';
import { splitWords, wordsOf } from '../../src/attacks/util/words.js';
import type { DualEncoder } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { fixture } from './helpers.js';
import { useCpu } from './setup.js';

beforeAll(useCpu);

const f = fixture({ nImages: 4 });
const env = { encoder: f.encoder, tokenizer: f.tokenizer };
const batch = { images: f.images, size: f.size, captions: f.captions, captionToImage: f.captionToImage };

describe('WordNet synonym transformation', () => {
  const swap = new WordNetSynonymSwap();
  const rng = new Rng(0);

  it('returns WordNet synonyms, single words only, never the word or its inflections', async () => {
    const red = await swap.candidates(['red'], 0, rng);
    expect(red).toEqual(expect.arrayContaining(['crimson', 'scarlet', 'ruby', 'reddish']));
    expect(red).not.toContain('red');
    for (const c of red) expect(c).toMatch(/^[a-z]+(-[a-z]+)*$/);
    const circle = await swap.candidates(['circle'], 0, rng);
    expect(circle.length).toBeGreaterThan(0);
    expect(circle).not.toContain('circles');
    expect(circle.every((c) => !sameMorphology(c, 'circle'))).toBe(true);
    const running = await swap.candidates(['running'], 0, rng);
    expect(running).not.toContain('run');
    const big = await swap.candidates(['big'], 0, rng);
    expect(big).toContain('large');
  });

  it('keeps the case and re-inflects regular plurals', async () => {
    expect(await swap.candidates(['Red'], 0, rng)).toContain('Crimson');
    expect(await swap.candidates(['RED'], 0, rng)).toContain('CRIMSON');
    const dogs = await swap.candidates(['dogs'], 0, rng);
    expect(dogs).toContain('hounds');
    expect(dogs).not.toContain('dog');
  });

  it('caches lookups and returns nothing for non-words', async () => {
    const s = new WordNetSynonymSwap();
    await s.candidates(['red'], 0, rng);
    await s.candidates(['Red'], 0, rng);
    expect(s.cacheSize).toBe(1);
    expect(await s.candidates(['x42'], 0, rng)).toEqual([]);
    expect(await s.candidates(['qwzxv'], 0, rng)).toEqual([]);
  });
});

describe('stop words', () => {
  it('uses a real English list', () => {
    expect(ENGLISH_STOP_WORDS.size).toBe(179);
    for (const w of ['the', 'a', 'of', 'and', 'The', 'above', "don't"]) expect(isStopWord(w)).toBe(true);
    for (const w of ['circle', 'red', 'dog']) expect(isStopWord(w)).toBe(false);
  });

  it('are never changed by the word attacks', async () => {
    const captions = ['the dog is on the mat and it is red', 'a man with a hat'];
    for (const name of ['text', 'charedit'] as const) {
      const r = await attackByName(name, { maxWordsChanged: 3, seed: 2 }).run({ captions }, env);
      r.captions!.texts.forEach((t, i) => {
        const a = wordsOf(splitWords(captions[i]));
        const b = wordsOf(splitWords(t));
        expect(b.length).toBe(a.length);
        a.forEach((w, k) => {
          if (isStopWord(w)) expect(b[k]).toBe(w);
        });
      });
    }
  });
});

describe('word attacks', () => {
  it('respect the words-changed budget', async () => {
    for (const max of [1, 2]) {
      for (const name of ['text', 'charedit', 'coattack', 'sga'] as const) {
        const r = await attackByName(name, { maxWordsChanged: max, seed: 4, steps: 1 }).run(batch, env);
        const c = r.captions!;
        c.texts.forEach((t, i) => {
          const a = wordsOf(splitWords(c.original[i]));
          const b = wordsOf(splitWords(t));
          const changed = a.filter((w, k) => w !== b[k]).length;
          expect(changed).toBe(c.wordsChanged[i]);
          expect(changed).toBeLessThanOrEqual(max);
        });
        expect(c.wordsChanged.some((w) => w > 0)).toBe(true);
      }
    }
  });

  it('change the text only where it raises the objective, and are reproducible', async () => {
    const a = await attackByName('charedit', { seed: 9 }).run(batch, env);
    const b = await attackByName('charedit', { seed: 9 }).run(batch, env);
    expect(a.captions!.texts).toEqual(b.captions!.texts);
    const t = await attackByName('text', { seed: 9 }).run(batch, env);
    expect(t.captions!.texts).toEqual((await attackByName('text', { seed: 9 }).run(batch, env)).captions!.texts);
    // the paired similarity dropped for every changed caption (similarity-drop goal)
    t.captions!.success.forEach((s, i) => expect(s).toBe(t.captions!.wordsChanged[i] > 0));
  });

  it('score all candidates of a search round in one textTower call', async () => {
    let calls = 0;
    let rows = 0;
    const counting: DualEncoder = Object.create(f.encoder);
    counting.textTower = (ids) => {
      calls++;
      rows += ids.shape[0];
      return f.encoder.textTower(ids);
    };
    const r = await attackByName('text', { seed: 1, objective: 'clean' }).run({ captions: f.captions }, { encoder: counting, tokenizer: f.tokenizer });
    const scored = r.captions!.queries.reduce((x, y) => x + y, 0);
    expect(rows).toBeGreaterThanOrEqual(scored);
    // clean embeddings + originals + importance + a few rounds + final check, not one call per candidate
    expect(calls).toBeLessThan(12);
    expect(scored).toBeGreaterThan(calls * 3);
  });
});

describe('character edits', () => {
  it('are valid single edits of the word', () => {
    const t = new CharEditTransformation({ perOp: 4 });
    for (const word of ['circle', 'Red', 'triangle', 'sky']) {
      const c = t.edits(word, new Rng(1));
      expect(c.length).toBeGreaterThan(0);
      for (const e of c) {
        expect(e).not.toBe(word);
        expect(e.length).toBeGreaterThan(0);
        expect(editDistance(e, word)).toBe(1);
        expect(e).toMatch(/^[A-Za-z]+$/);
        expect(Math.abs(e.length - word.length)).toBeLessThanOrEqual(1);
      }
      expect(new Set(c).size).toBe(c.length);
      expect(t.edits(word, new Rng(1))).toEqual(c);
    }
    expect(t.edits('an', new Rng(1))).toEqual([]);
    expect(new CharEditTransformation({ ops: ['swap'] }).edits('abc', new Rng(2)).every((e) => ['bac', 'acb'].includes(e))).toBe(true);
  });
});
