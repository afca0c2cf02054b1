import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BOS_ID,
  BYTE_OFFSET,
  EOS_ID,
  PAD_ID,
  SPACE_BYTE_ID,
  WORD_OFFSET,
  WordByteTokenizer,
  buildTokenizer,
  pretokenize,
  tokenizerFromJSON,
} from '../../src/model/tokenizer.js';

const bytesOf = (s: string): number[] => [...new TextEncoder().encode(s)].map((b) => BYTE_OFFSET + b);

const captions = [
  'A red circle left of a blue square.',
  'a red circle above a green star',
  'The blue square is bigger than the red circle!',
  'two small stars, one yellow',
  'A RED circle',
];

describe('tokenizer', () => {
  const tok = buildTokenizer(captions, { maxLen: 16 });

  it('pre-tokenises words and punctuation after NFKC + lower-case', () => {
    expect(pretokenize('A red-circle, left!')).toEqual(['a', 'red', '-', 'circle', ',', 'left', '!']);
    // NFKC folds the full-width letters and the ligature
    expect(pretokenize('ＲＥＤ ﬁsh')).toEqual(['red', 'fish']);
    expect(pretokenize('  \t\n ')).toEqual([]);
  });

  it('orders the vocabulary by frequency, then lexicographically', () => {
    const words = tok.vocabulary();
    // 'a' x5 ('A' folded), 'red' x4, 'circle' x4 -> ties sorted lexicographically
    expect(words.slice(0, 3)).toEqual(['a', 'circle', 'red']);
    for (let i = 1; i < words.length; i++) expect(words[i - 1]).not.toBe(words[i]);
    expect(tok.vocabSize).toBe(WORD_OFFSET + words.length);
    expect(buildTokenizer([...captions].reverse(), { maxLen: 16 }).vocabulary()).toEqual(words);
  });

  it('applies minFreq and maxVocab', () => {
    const t2 = buildTokenizer(captions, { maxLen: 16, minFreq: 3 });
    expect(t2.vocabulary()).toEqual(['a', 'circle', 'red']);
    const t3 = buildTokenizer(captions, { maxLen: 16, maxVocab: WORD_OFFSET + 2 });
    expect(t3.vocabSize).toBe(WORD_OFFSET + 2);
    expect(t3.vocabulary()).toEqual(['a', 'circle']);
    expect(() => buildTokenizer(captions, { maxLen: 16, maxVocab: 100 })).toThrow(/maxVocab must be >= 260/);
    expect(() => buildTokenizer(captions, { maxLen: 1 })).toThrow(/maxLen/);
  });

  it('encodes known words as word ids and unknown words as UTF-8 bytes', () => {
    const ids = tok.encode('Red zebra');
    const red = tok.wordId('red')!;
    expect(red).toBeGreaterThanOrEqual(WORD_OFFSET);
    const zebra = [...new TextEncoder().encode('zebra')].map((b) => BYTE_OFFSET + b);
    expect(ids).toEqual([BOS_ID, red, ...zebra, EOS_ID]);
    expect(tok.decode(ids)).toBe('red zebra');
    // emoji / CJK go through bytes too
    const e = tok.encode('🙂猫');
    expect(e.length).toBe(2 + 4 + 3);
    expect(tok.decode(e)).toBe('🙂猫'); // adjacent byte runs decode together
  });

  it('truncates to maxLen and keeps EOS', () => {
    const long = 'a red circle '.repeat(20);
    const ids = tok.encode(long);
    expect(ids.length).toBe(16);
    expect(ids[0]).toBe(BOS_ID);
    expect(ids[15]).toBe(EOS_ID);
    const tiny = buildTokenizer(captions, { maxLen: 2 });
    expect(tiny.encode('anything at all')).toEqual([BOS_ID, EOS_ID]);
  });

  it('encodeBatch right-pads with PAD', () => {
    const batch = tok.encodeBatch(['a red circle', '']);
    expect(batch.length).toBe(2 * 16);
    expect(Array.from(batch.subarray(16, 19))).toEqual([BOS_ID, EOS_ID, PAD_ID]);
    expect(batch[3 + 1]).toBe(EOS_ID);
    expect(Array.from(batch.subarray(5, 16)).every((x) => x === PAD_ID)).toBe(true);
  });

  it('round-trips through JSON and rejects bad JSON with a clear error', () => {
    const json = JSON.parse(JSON.stringify(tok.toJSON()));
    const back = tokenizerFromJSON(json);
    expect(back.vocabSize).toBe(tok.vocabSize);
    for (const c of [...captions, 'zebra 🙂 ok']) expect(back.encode(c)).toEqual(tok.encode(c));

    expect(() => tokenizerFromJSON({ ...json, vocabSize: 3 })).toThrow(/invalid tokenizer JSON: vocabSize/);
    expect(() => tokenizerFromJSON({ ...json, words: [...json.words, 'a'] })).toThrow(/duplicate word "a"/);
    expect(() => tokenizerFromJSON({ ...json, words: ['two words'], vocabSize: WORD_OFFSET + 1 })).toThrow(/single pre-token/);
    expect(() => tokenizerFromJSON({ ...json, format: 'other' })).toThrow(/format: unknown tokenizer format "other"/);
    expect(() => tokenizerFromJSON({ ...json, format: undefined })).toThrow(/format: missing/);
    expect(() => tokenizerFromJSON(null)).toThrow(/invalid tokenizer JSON/);
    expect(back).toBeInstanceOf(WordByteTokenizer);
  });

  it('property: any string -> ids in [0, vocabSize), BOS first, EOS last, length <= maxLen', () => {
    const small = buildTokenizer(captions, { maxLen: 9 });
    const arb = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }), // any code point incl. astral planes
      fc.string({ unit: 'binary-ascii', maxLength: 40 }), // control characters
      fc.string({ unit: fc.constantFrom('\uD800', '\uDFFF', 'a', ' ', 'é', 'e\u0301', '🙂', '，', 'Ⅻ'), maxLength: 30 }),
      fc.array(fc.constantFrom(...captions, 'red', 'circle', '!'), { maxLength: 6 }).map((xs) => xs.join(' ')),
    );
    for (const t of [tok, small]) {
      fc.assert(
        fc.property(arb, (s) => {
          const ids = t.encode(s);
          expect(ids[0]).toBe(BOS_ID);
          expect(ids[ids.length - 1]).toBe(EOS_ID);
          expect(ids.length).toBeGreaterThanOrEqual(2);
          expect(ids.length).toBeLessThanOrEqual(t.maxLen);
          for (const id of ids) {
            expect(Number.isInteger(id)).toBe(true);
            expect(id).toBeGreaterThanOrEqual(0);
            expect(id).toBeLessThan(t.vocabSize);
          }
          // only the first and last positions are specials
          for (const id of ids.slice(1, -1)) expect(id).toBeGreaterThanOrEqual(BYTE_OFFSET);
          // deterministic
          expect(t.encode(s)).toEqual(ids);
        }),
        { numRuns: 500, seed: 42 },
      );
    }
  });

  it('property: the vocabulary learned from any captions round-trips and encodes them', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 20 }), { maxLength: 10 }), (caps) => {
        const t = buildTokenizer(caps, { maxLen: 64 });
        const back = tokenizerFromJSON(JSON.parse(JSON.stringify(t.toJSON())));
        for (const c of caps) {
          expect(back.encode(c)).toEqual(t.encode(c));
          // every piece of a training caption is in the vocabulary: no byte fallback
          for (const id of t.encode(c).slice(1, -1)) expect(id).toBeGreaterThanOrEqual(WORD_OFFSET);
        }
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  describe('unknown words (issue 21)', () => {
    const known = buildTokenizer(['a red circle'], { maxLen: 32 });
    const a = known.wordId('a')!;
    const red = known.wordId('red')!;

    it('keeps the boundary between adjacent unknown words', () => {
      expect(known.encode('a big dog')).not.toEqual(known.encode('a bigdog'));
      expect(known.encode('a big dog')).toEqual([BOS_ID, a, ...bytesOf('big'), SPACE_BYTE_ID, ...bytesOf('dog'), EOS_ID]);
      expect(known.encode('a bigdog')).toEqual([BOS_ID, a, ...bytesOf('bigdog'), EOS_ID]);
      // any whitespace run is one boundary; pieces that touch in the text stay adjacent
      expect(known.encode('big \t\n dog')).toEqual(known.encode('big dog'));
      expect(known.encode('zebra-crossing')).toEqual([BOS_ID, ...bytesOf('zebra-crossing'), EOS_ID]);
      expect(known.encode('zebra - crossing')).toEqual([
        BOS_ID, ...bytesOf('zebra'), SPACE_BYTE_ID, ...bytesOf('-'), SPACE_BYTE_ID, ...bytesOf('crossing'), EOS_ID,
      ]);
      // a known word between them needs no separator, and known words encode as before
      expect(known.encode('big red dog')).toEqual([BOS_ID, ...bytesOf('big'), red, ...bytesOf('dog'), EOS_ID]);
      expect(known.encode('A red circle')).toEqual([BOS_ID, a, red, known.wordId('circle')!, EOS_ID]);
      expect(known.decode(known.encode('a big dog'))).toBe('a big dog');
    });

    it('gives every unknown word a share of a caption that does not fit', () => {
      const caption = 'supercalifragilisticexpialidocious zebra giraffe hippo';
      const ids = known.encode(caption);
      expect(ids.length).toBe(32);
      expect(ids[31]).toBe(EOS_ID);
      // all four words are present, each cut to the same byte budget, separated by the space byte
      const parts: number[][] = [[]];
      for (const id of ids.slice(1, -1)) {
        if (id === SPACE_BYTE_ID) parts.push([]);
        else parts[parts.length - 1].push(id);
      }
      expect(parts.length).toBe(4);
      // budget b: min(34, b) + min(5, b) + min(7, b) + min(5, b) + 3 separators <= 30 -> b = 10 (shorter words whole)
      expect(parts).toEqual([bytesOf('supercalif'), bytesOf('zebra'), bytesOf('giraffe'), bytesOf('hippo')]);
      // a caption that fits is not cut
      expect(known.encode('zebra giraffe hippo')).toEqual([
        BOS_ID, ...bytesOf('zebra'), SPACE_BYTE_ID, ...bytesOf('giraffe'), SPACE_BYTE_ID, ...bytesOf('hippo'), EOS_ID,
      ]);
      // known words are never cut; the budget applies to byte pieces only
      const mixed = known.encode(`a ${'x'.repeat(100)} red ${'y'.repeat(100)} circle`);
      // 3 word ids + 2 * budget <= 30 -> budget 13, 29 content ids
      expect(mixed).toEqual([
        BOS_ID, a, ...bytesOf('x'.repeat(13)), red, ...bytesOf('y'.repeat(13)), known.wordId('circle')!, EOS_ID,
      ]);
    });

    it('property: up to (maxLen - 1) / 2 unknown words are all represented, in order', () => {
      const room = known.maxLen - 2;
      fc.assert(
        fc.property(
          fc.array(fc.stringMatching(/^[b-z]{1,20}$/), { minLength: 1, maxLength: Math.floor((room + 1) / 2) }),
          (words) => {
            const ws = words.filter((w) => known.wordId(w) === undefined);
            fc.pre(ws.length > 0);
            const ids = known.encode(ws.join(' '));
            expect(ids.length).toBeLessThanOrEqual(known.maxLen);
            const content = ids.slice(1, -1);
            expect(content.filter((id) => id === SPACE_BYTE_ID).length).toBe(ws.length - 1);
            const firsts = [content[0], ...content.flatMap((id, i) => (id === SPACE_BYTE_ID ? [content[i + 1]] : []))];
            expect(firsts).toEqual(ws.map((w) => BYTE_OFFSET + w.charCodeAt(0)));
          },
        ),
        { numRuns: 300, seed: 11 },
      );
    });
  });
});
