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
 *    Two byte-encoded pieces that were separated by whitespace get the space byte (0x20) between them, so
 *    "a big dog" and "a bigdog" differ when "big" and "dog" are unknown. 0x20 never occurs inside a piece
 *    (whitespace only separates), so it is an unambiguous word boundary; pieces that touched in the text
 *    ("🙂猫", "zebra-crossing") stay adjacent, and a known word needs no separator (its id is its own token).
 * 4. BOS + ids + EOS. When the content does not fit in maxLen-2 ids, every byte-encoded piece is first cut to a
 *    common byte budget: the largest per-piece length that makes the whole caption fit (at least 1 byte), so a
 *    long unknown word can no longer push every later word out of the sequence. Only if the caption still does
 *    not fit is the tail cut: BOS, the first maxLen-2 content ids, EOS (EOS is always kept).
 *    Trade-off: in a caption too long for maxLen, unknown words that share their first `budget` bytes get the same
 *    ids (e.g. "international" / "internationally" with a budget of 8), and a cut may end inside a multi-byte
 *    character (decode shows U+FFFD); before, the same caption lost whole later words instead.
 *    Compatibility: captions of known words encode exactly as before. A caption with two unknown words side by
 *    side now has the space byte between them (the first fix), so an artifact trained before it sees such
 *    captions slightly differently; the format name did not change.
 *
 * Id layout (fixed; stored in the JSON so a future layout can be detected)
 *   0 = PAD, 1 = BOS, 2 = EOS, 3 = MASK (reserved; never produced by encode),
 *   4 .. 259 = bytes 0x00 .. 0xff, 260 .. vocabSize-1 = words in vocabulary order.
 */
import { z } from 'zod';
import { CLIP_TOKENIZER_FORMAT, clipTokenizerFromJSON } from './clip-tokenizer.js';
import type { Tokenizer } from './types.js';
import { formatZodIssues } from '../util/zod.js';

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

/** the word-boundary byte between two byte-encoded words (see the module comment) */
export const SPACE_BYTE_ID = BYTE_OFFSET + 0x20;

/** a word id, or a byte-encoded piece (`sep`: a space byte goes before it) */
type Unit = { id: number; bytes?: undefined; sep?: undefined } | { id?: undefined; bytes: Uint8Array; sep: boolean };

function contentLength(units: readonly Unit[], budget: number): number {
  let n = 0;
  for (const u of units) n += u.bytes ? (u.sep ? 1 : 0) + Math.min(u.bytes.length, budget) : 1;
  return n;
}

function flatten(units: readonly Unit[], budget: number): number[] {
  const out: number[] = [];
  for (const u of units) {
    if (!u.bytes) {
      out.push(u.id);
      continue;
    }
    if (u.sep) out.push(SPACE_BYTE_ID);
    const n = Math.min(u.bytes.length, budget);
    for (let i = 0; i < n; i++) out.push(BYTE_OFFSET + u.bytes[i]);
  }
  return out;
}

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

  /** the pieces of a text: word ids, or UTF-8 bytes with whether whitespace separated them from a byte piece */
  private units(text: string): Unit[] {
    const out: Unit[] = [];
    let prevEnd = -1;
    let prevBytes = false;
    for (const m of normalizeText(text).matchAll(PIECE_RE)) {
      const piece = m[0];
      const start = m.index ?? 0;
      const id = this.index.get(piece);
      if (id !== undefined) {
        out.push({ id });
        prevBytes = false;
      } else {
        // PIECE_RE skips only whitespace, so a gap between two pieces is whitespace
        out.push({ bytes: encoder.encode(piece), sep: prevBytes && start > prevEnd });
        prevBytes = true;
      }
      prevEnd = start + piece.length;
    }
    return out;
  }

  /** content ids for a text: no BOS/EOS, no truncation, no byte budget */
  encodePieces(text: string): number[] {
    return flatten(this.units(text), Number.POSITIVE_INFINITY);
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`tokenizer.encode: expected a string, got ${typeof text}`);
    const units = this.units(text);
    const room = this.maxLen - 2;
    let budget = Number.POSITIVE_INFINITY;
    if (contentLength(units, budget) > room) {
      // the largest per-piece byte budget that fits (binary search: the length is monotone in the budget)
      let lo = 1;
      let hi = 0;
      for (const u of units) if (u.bytes && u.bytes.length > hi) hi = u.bytes.length;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (contentLength(units, mid) <= room) lo = mid;
        else hi = mid - 1;
      }
      budget = lo;
    }
    const content = flatten(units, budget);
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

/** Rebuild a word tokenizer from its JSON (tokenizer.json or manifest), validated; errors name the bad field. */
export function wordTokenizerFromJSON(json: unknown): WordByteTokenizer {
  const parsed = tokenizerJsonSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`invalid tokenizer JSON: ${formatZodIssues(parsed.error, 5)}`);
  }
  return new WordByteTokenizer(parsed.data.words, parsed.data.maxLen);
}

/**
 * Rebuild any Manyfold tokenizer from its JSON (an artifact's tokenizer.json or manifest entry), dispatching on
 * `format`: Manyfold's word tokenizer or CLIP's BPE. Errors name the bad field.
 */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const format = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as { format?: unknown }).format : undefined;
  if (format === TOKENIZER_FORMAT) return wordTokenizerFromJSON(json);
  if (format === CLIP_TOKENIZER_FORMAT) return clipTokenizerFromJSON(json);
  const known = [TOKENIZER_FORMAT, CLIP_TOKENIZER_FORMAT].map((f) => JSON.stringify(f)).join(', ');
  if (format === undefined) {
    throw new Error(`invalid tokenizer JSON: format: missing (expected an object with format ${known})`);
  }
  throw new Error(`invalid tokenizer JSON: format: unknown tokenizer format ${JSON.stringify(format)} (known: ${known})`);
}
