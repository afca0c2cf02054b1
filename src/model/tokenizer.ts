/**
 * The Manyfold text tokenizer: a word-level vocabulary with a 256-token UTF-8 byte fallback.
 *
 * Why this design
 * - The captions Manyfold trains on (Karpathy-style COCO/Flickr, the procedural `scenes` set) have small,
 *   closed vocabularies: a word vocabulary of a few thousand entries covers almost every training token, keeps
 *   sequences short (one token per word, which the tiny text towers need) and makes word-substitution attacks
 *   (PAPER.md: change one word) map to exactly one changed token.
 * - Robustness needs totality: attacks, paraphrasers and API users send arbitrary strings (typos, emoji, CJK,
 *   control characters). A word outside the vocabulary is therefore encoded as its UTF-8 bytes, one token per
 *   byte, so every string has an encoding and no id is ever outside [0, vocabSize). There is no UNK token:
 *   two different unknown words never collapse to the same ids.
 * - Deterministic: the vocabulary order depends only on the training captions (frequency descending, then
 *   code-unit lexicographic order), never on Map iteration or locale.
 *
 * Pipeline for one string
 * 1. Unicode NFKC, then lower-case (then NFKC again: lower-casing can leave a string not in NFKC).
 * 2. Pre-tokenise: maximal runs of letters, marks and digits (`[\p{L}\p{M}\p{N}]+`) are words; every other
 *    non-whitespace code point is a token of its own (punctuation, symbols, emoji, control characters);
 *    whitespace separates. "A red-circle, left!" -> a | red | - | circle | , | left | !
 * 3. Each piece that is in the vocabulary becomes its word id; any other piece becomes its UTF-8 bytes.
 *    Lone surrogates are encoded as U+FFFD's bytes (the TextEncoder rule).
 * 4. BOS + ids + EOS; when longer than maxLen the middle is cut so the sequence is
 *    BOS, the first maxLen-2 content ids, EOS (EOS is always kept).
 *
 * Id layout (fixed; stored in the JSON so a future layout can be detected)
 *   0 = PAD, 1 = BOS, 2 = EOS, 3 = MASK (reserved; never produced by encode),
 *   4 .. 259 = bytes 0x00 .. 0xff, 260 .. vocabSize-1 = words in vocabulary order.
 */
import { z } from 'zod';
import type { Tokenizer } from './types.js';

export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const MASK_ID = 3;
export const BYTE_OFFSET = 4;
export const NUM_BYTES = 256;
export const WORD_OFFSET = BYTE_OFFSET + NUM_BYTES; // 260

export const TOKENIZER_FORMAT = 'manyfold-tokenizer/word-bytes-1';

const PIECE_RE = /[\p{L}\p{M}\p{N}]+|[^\s\p{L}\p{M}\p{N}]/gu;
const WORD_ONLY_RE = /^(?:[\p{L}\p{M}\p{N}]+|[^\s\p{L}\p{M}\p{N}])$/u;

export interface BuildTokenizerOptions {
  /** maximum sequence length including BOS and EOS (>= 2) */
  maxLen: number;
  /**
   * maximum vocabulary size in ids, including the 4 specials and 256 byte tokens (so >= 260; the number of
   * word entries is at most maxVocab - 260). Default: no limit.
   */
  maxVocab?: number;
  /** a word enters the vocabulary only if it occurs at least this many times (default 1) */
  minFreq?: number;
}

/** Normalise a string the way the tokenizer sees it (NFKC + lower-case). */
export function normalizeText(text: string): string {
  return text.normalize('NFKC').toLowerCase().normalize('NFKC');
}

/** Split normalised text into pieces (words, and single non-word code points). */
export function pretokenize(text: string): string[] {
  return normalizeText(text).match(PIECE_RE) ?? [];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** The serialisable form (tokenizer.json / manifest). */
export const tokenizerJsonSchema = z
  .object({
    format: z.literal(TOKENIZER_FORMAT),
    maxLen: z.number().int().min(2, 'maxLen must be >= 2 (BOS and EOS)').max(65536),
    normalization: z.literal('NFKC+lower'),
    specials: z.object({
      pad: z.literal(PAD_ID),
      bos: z.literal(BOS_ID),
      eos: z.literal(EOS_ID),
      mask: z.literal(MASK_ID),
    }),
    byteOffset: z.literal(BYTE_OFFSET),
    wordOffset: z.literal(WORD_OFFSET),
    vocabSize: z.number().int().min(WORD_OFFSET),
    words: z.array(z.string().min(1, 'empty word in vocabulary')),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.vocabSize !== WORD_OFFSET + v.words.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['vocabSize'],
        message: `vocabSize ${v.vocabSize} != ${WORD_OFFSET} + words.length (${v.words.length})`,
      });
    }
    const seen = new Set<string>();
    for (let i = 0; i < v.words.length; i++) {
      const w = v.words[i];
      if (seen.has(w)) {
        ctx.addIssue({ code: 'custom', path: ['words', i], message: `duplicate word ${JSON.stringify(w)}` });
        return;
      }
      seen.add(w);
      if (!WORD_ONLY_RE.test(w)) {
        ctx.addIssue({
          code: 'custom',
          path: ['words', i],
          message: `word ${JSON.stringify(w)} is not a single pre-token piece; it could never be produced`,
        });
        return;
      }
    }
  });

export type TokenizerJSON = z.infer<typeof tokenizerJsonSchema>;

export class WordByteTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly maxLen: number;
  private readonly words: readonly string[];
  private readonly index: Map<string, number>;

  constructor(words: readonly string[], maxLen: number) {
    if (!Number.isInteger(maxLen) || maxLen < 2) throw new Error(`tokenizer: maxLen must be an integer >= 2, got ${maxLen}`);
    this.words = Object.freeze([...words]);
    this.maxLen = maxLen;
    this.vocabSize = WORD_OFFSET + words.length;
    this.index = new Map();
    words.forEach((w, i) => {
      if (this.index.has(w)) throw new Error(`tokenizer: duplicate word ${JSON.stringify(w)}`);
      this.index.set(w, WORD_OFFSET + i);
    });
  }

  /** number of word entries (vocabSize - 260) */
  get wordCount(): number {
    return this.words.length;
  }

  /** the vocabulary words in id order (id = 260 + index) */
  vocabulary(): readonly string[] {
    return this.words;
  }

  /** the id of a vocabulary word (after normalisation), or undefined when it would fall back to bytes */
  wordId(word: string): number | undefined {
    return this.index.get(normalizeText(word));
  }

  /** content ids for a text: no BOS/EOS, no truncation */
  encodePieces(text: string): number[] {
    const out: number[] = [];
    for (const piece of pretokenize(text)) {
      const id = this.index.get(piece);
      if (id !== undefined) {
        out.push(id);
      } else {
        for (const b of encoder.encode(piece)) out.push(BYTE_OFFSET + b);
      }
    }
    return out;
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`tokenizer.encode: expected a string, got ${typeof text}`);
    const content = this.encodePieces(text);
    const room = this.maxLen - 2;
    const body = content.length > room ? content.slice(0, room) : content;
    return [BOS_ID, ...body, EOS_ID];
  }

  encodeBatch(texts: string[]): Int32Array {
    const L = this.maxLen;
    const out = new Int32Array(texts.length * L); // zero = PAD
    for (let i = 0; i < texts.length; i++) out.set(this.encode(texts[i]), i * L);
    return out;
  }

  /**
   * Best-effort inverse for debugging and reports: words joined by spaces, runs of byte tokens decoded as
   * UTF-8; specials and padding dropped. Not an exact inverse (normalisation and spacing are lost).
   */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length) parts.push(decoder.decode(Uint8Array.from(bytes)));
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id >= BYTE_OFFSET && id < WORD_OFFSET) {
        bytes.push(id - BYTE_OFFSET);
        continue;
      }
      flush();
      if (id >= WORD_OFFSET && id < this.vocabSize) parts.push(this.words[id - WORD_OFFSET]);
    }
    flush();
    return parts.join(' ');
  }

  toJSON(): TokenizerJSON {
    return {
      format: TOKENIZER_FORMAT,
      maxLen: this.maxLen,
      normalization: 'NFKC+lower',
      specials: { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID, mask: MASK_ID },
      byteOffset: BYTE_OFFSET,
      wordOffset: WORD_OFFSET,
      vocabSize: this.vocabSize,
      words: [...this.words],
    };
  }
}

/**
 * Learn a vocabulary from training captions. Order: frequency descending, then code-unit lexicographic, so the
 * same captions always give the same ids. Words are kept when count >= minFreq, then the list is cut to
 * maxVocab - 260 entries.
 */
export function buildTokenizer(captions: readonly string[], opts: BuildTokenizerOptions): WordByteTokenizer {
  const { maxLen, maxVocab = Number.POSITIVE_INFINITY, minFreq = 1 } = opts;
  if (!Number.isInteger(maxLen) || maxLen < 2) throw new Error(`buildTokenizer: maxLen must be an integer >= 2, got ${maxLen}`);
  if (!(maxVocab >= WORD_OFFSET)) {
    throw new Error(`buildTokenizer: maxVocab must be >= ${WORD_OFFSET} (4 specials + 256 bytes), got ${maxVocab}`);
  }
  if (!(minFreq >= 1)) throw new Error(`buildTokenizer: minFreq must be >= 1, got ${minFreq}`);
  const counts = new Map<string, number>();
  for (const c of captions) {
    for (const piece of pretokenize(c)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  const entries = [...counts].filter(([, n]) => n >= minFreq);
  entries.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const limit = Math.min(entries.length, maxVocab - WORD_OFFSET);
  return new WordByteTokenizer(
    entries.slice(0, limit).map(([w]) => w),
    maxLen,
  );
}

/** Rebuild a tokenizer from its JSON (tokenizer.json or manifest), validated; errors name the bad field. */
export function tokenizerFromJSON(json: unknown): WordByteTokenizer {
  const parsed = tokenizerJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ');
    throw new Error(`invalid tokenizer JSON: ${issues}`);
  }
  return new WordByteTokenizer(parsed.data.words, parsed.data.maxLen);
}
