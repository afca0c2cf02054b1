/**
 * CLIP's byte-level BPE tokenizer, read from a checkpoint's own files, with Hugging Face's `tokenizer.json`
 * semantics (CLIPTokenizerFast), which is what the HF checkpoints users bring were trained and evaluated with.
 *
 * Pipeline (one string)
 * 1. Normalise: Unicode NFC, each run of whitespace -> " ", lower-case code point by code point.
 * 2. Added tokens written in the text (`<|startoftext|>`, `<|endoftext|>`) become their ids, as in HF and in
 *    OpenAI's original. So a caption containing "<|endoftext|>" has an EOT in the middle, and CLIP's pooling (the
 *    first EOT / the argmax of the ids) then reads the text only up to there: ids match PyTorch, by design.
 * 3. Pre-tokenise with CLIP's regex `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` (whitespace is
 *    dropped; one digit per piece), map each UTF-8 byte to its `bytes_to_unicode` character.
 * 4. BPE over each piece with "</w>" appended to its last character, lowest merge rank first.
 * 5. <|startoftext|> + ids + <|endoftext|>; longer texts keep the first maxLen - 2 ids and EOT stays last.
 *
 * HF's fast tokenizer vs OpenAI's original (`simple_tokenizer.py`, also open_clip's default): the original first runs
 * `ftfy.fix_text` (mojibake repair + NFC) and `html.unescape` twice, strips, and lower-cases with Python's
 * context-sensitive `str.lower()`. So "&amp;" is "&" there and stays "&amp;" here. Manyfold matches HF's
 * `tokenizer.json` for every input, including open_clip's `bpe_simple_vocab_16e6.txt.gz` vocabularies (whose ids
 * agree with HF's for any text that ftfy and html.unescape leave unchanged: ordinary captions).
 *
 * Library choice (issue 21 asks for a kept library over a hand-written BPE): `@huggingface/tokenizers` 0.2.0 (pure JS,
 * no dependencies, ~100 KB, no node: imports, so it bundles for the Worker) does steps 2-4. Run on the tiny-bpe
 * vocabulary from its own copy of the tokenizer.json, against the independent reference
 * (test/reference/clip_tokenizer_ref.py; 47 awkward texts: case, punctuation, digits, contractions, accents,
 * decomposed marks, whitespace incl. U+0085 / U+FEFF / U+001F, emoji, CJK, specials in the text, >77 tokens), it
 * gave identical ids on 46. The one difference is its Lowercase normaliser: String.prototype.toLowerCase applies
 * Unicode's Final_Sigma rule ("ΟΔΟΣ" -> "οδος"), while the Rust `tokenizers` crate lower-cases each char on its own
 * ("οδοσ"). Final_Sigma is the only context-dependent mapping of toLowerCase and capital sigma has no other lower
 * case, so mapping "Σ" to "σ" before the library makes the two agree on all 47 (test/model/clip-tokenizer.test.ts).
 * Everything else (the Oniguruma `\s` / `\p{L}` translation of CLIP's regex, byte-level mapping, "</w>", ranks,
 * added-token matching) matched, so a hand-written BPE would add code without adding agreement. Speed on this
 * 2-core machine: 0.03-0.15 ms per caption (14 tokens on the tiny vocabulary; 30-40 tokens on a synthetic
 * 49,408-token vocabulary with 48,894 merges), 2-5 ms for a batch of 32; building the tokenizer for a CLIP-sized
 * vocabulary takes ~0.4-0.7 s (once per model load). The library caches words in a bounded LRU (10k words). It is
 * only ever given a canonical config that this module builds from validated data, never a file as found on disk.
 *
 * Padding: encodeBatch pads with id 0 (the "!" token in CLIP's vocabulary), as OpenAI's `clip.tokenize` does; HF pads
 * with EOT. Either is safe because the text tower is causal and pools at the (first) EOT position: no position
 * before EOT attends to a pad, so pad ids never reach the pooled token.
 *
 * Worker-safe: nothing here touches node:fs; clipTokenizerFromDir imports it lazily.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import type { Tokenizer } from './types.js';
import { formatZodIssues } from '../util/zod.js';

export const CLIP_TOKENIZER_FORMAT = 'manyfold-tokenizer/clip-bpe-1';
export const CLIP_DEFAULT_MAX_LEN = 77;
export const CLIP_WORD_SUFFIX = '</w>';
/** CLIP's pre-tokeniser pattern, as HF's CLIPConverter writes it into tokenizer.json (Oniguruma syntax). */
export const CLIP_PRETOKENIZE_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
/** the normalisation this tokenizer applies (stored in its JSON so a different one can be detected) */
export const CLIP_NORMALIZATION = 'NFC+whitespace-runs-to-space+lowercase-per-codepoint';
/** open_clip and HF's CLIPTokenizer read at most this many merges (49152 - 256 bytes - 2 specials) */
export const CLIP_MAX_MERGES = 49152 - 256 - 2;
/** HF / OpenAI spelling of the specials; open_clip's own vocabulary file spells them `<start_of_text>` etc. */
export const CLIP_SOT = '<|startoftext|>';
export const CLIP_EOT = '<|endoftext|>';
export const OPEN_CLIP_SOT = '<start_of_text>';
export const OPEN_CLIP_EOT = '<end_of_text>';
export const CLIP_PAD_ID = 0;

/** Oniguruma's Unicode `\s` (what `tokenizers` uses), spelled out: JavaScript's `\s` adds U+FEFF and lacks U+0085. */
const WS_CLASS = '\\t\\n\\v\\f\\r\\u0085\\p{Zs}\\p{Zl}\\p{Zp}';
const WS_CHAR_RE = new RegExp(`[${WS_CLASS}]`, 'u');
/** inputs are cut into chunks of about this many code units, at whitespace, so huge texts stop once 77 ids exist */
const CHUNK_CHARS = 512;

/** A malformed tokenizer file or JSON; `file` names it and `key` the field / line when there is one. */
export class ClipTokenizerError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly key?: string,
  ) {
    super(message);
    this.name = 'ClipTokenizerError';
  }
}

/** GPT-2 / CLIP `bytes_to_unicode`: `ordered` is CLIP's vocabulary order, `byByte[b]` the character of byte b. */
export function bytesToUnicode(): { ordered: string[]; byByte: string[] } {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const kept = new Set(keep);
  const byByte: string[] = new Array(256);
  const ordered: string[] = [];
  for (const b of keep) ordered.push((byByte[b] = String.fromCodePoint(b)));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!kept.has(b)) ordered.push((byByte[b] = String.fromCodePoint(256 + n++)));
  return { ordered, byByte };
}

export interface ClipAddedToken {
  id: number;
  content: string;
  /** matched after normalisation (true) or in the raw text (false), as HF's AddedToken.normalized */
  normalized: boolean;
  special: boolean;
}

/** Everything that defines a CLIP BPE tokenizer. */
export interface ClipBpeSpec {
  /** tokens by id, specials included */
  vocab: readonly string[];
  /** merges in rank order */
  merges: ReadonlyArray<readonly [string, string]>;
  /** tokens matched verbatim in the text (at least SOT and EOT) */
  addedTokens: readonly ClipAddedToken[];
  sot: string;
  eot: string;
  maxLen: number;
}

type Where = (what: 'vocab' | 'merge' | 'added' | 'special' | 'maxLen', index?: number) => { file?: string; key?: string };

function fail(where: Where, what: Parameters<Where>[0], index: number | undefined, message: string): never {
  const { file, key } = where(what, index);
  const prefix = [file, key].filter(Boolean).join(': ');
  throw new ClipTokenizerError(prefix ? `${prefix}: ${message}` : message, file, key);
}

const defaultWhere: Where = (what, index) => {
  const field = { merge: 'merges', vocab: 'vocab', added: 'addedTokens', special: 'specials', maxLen: 'maxLen' }[what];
  return { file: 'tokenizer JSON', key: index === undefined ? field : `${field}[${index}]` };
};

/** Check that a spec is a usable CLIP tokenizer; errors name the file / key through `where`. */
function validateSpec(spec: ClipBpeSpec, where: Where): { index: Map<string, number> } {
  const index = new Map<string, number>();
  spec.vocab.forEach((tok, id) => {
    if (typeof tok !== 'string' || tok.length === 0) fail(where, 'vocab', id, `empty token at id ${id}`);
    const prev = index.get(tok);
    if (prev !== undefined) fail(where, 'vocab', id, `token ${JSON.stringify(tok)} appears twice (ids ${prev} and ${id})`);
    index.set(tok, id);
  });
  // every byte, bare and word-final, must be a token, or text would need an unknown token (CLIP has none)
  const { ordered } = bytesToUnicode();
  for (const ch of ordered) {
    for (const t of [ch, ch + CLIP_WORD_SUFFIX]) {
      if (!index.has(t)) {
        fail(where, 'vocab', undefined, `byte-level token ${JSON.stringify(t)} is missing: not a CLIP byte-level vocabulary`);
      }
    }
  }
  const seen = new Set<string>();
  spec.merges.forEach(([a, b], i) => {
    if (!a || !b) fail(where, 'merge', i, 'a merge needs two non-empty parts');
    for (const part of [a, b]) {
      if (!index.has(part)) fail(where, 'merge', i, `merge "${a} ${b}": ${JSON.stringify(part)} is not in the vocabulary`);
    }
    if (!index.has(a + b)) fail(where, 'merge', i, `merge "${a} ${b}": the merged token ${JSON.stringify(a + b)} is not in the vocabulary`);
    const key = `${a} ${b}`;
    if (seen.has(key)) fail(where, 'merge', i, `merge "${key}" appears twice`);
    seen.add(key);
  });
  spec.addedTokens.forEach((t, i) => {
    if (!Number.isInteger(t.id) || t.id < 0 || t.id >= spec.vocab.length || spec.vocab[t.id] !== t.content) {
      fail(where, 'added', i, `added token ${JSON.stringify(t.content)} has id ${t.id}, but that id holds ${JSON.stringify(spec.vocab[t.id])}`);
    }
    // chunked encoding cuts texts at whitespace, which must never split an added token
    if (t.content.length === 0 || WS_CHAR_RE.test(t.content)) {
      fail(where, 'added', i, `added token ${JSON.stringify(t.content)} is empty or contains whitespace (unsupported)`);
    }
  });
  for (const [name, content] of [['sot', spec.sot], ['eot', spec.eot]] as const) {
    if (!spec.addedTokens.some((t) => t.content === content)) {
      fail(where, 'special', undefined, `${name} token ${JSON.stringify(content)} is not an added token of this vocabulary`);
    }
  }
  if (spec.sot === spec.eot) fail(where, 'special', undefined, `sot and eot are the same token ${JSON.stringify(spec.sot)}`);
  if (!Number.isInteger(spec.maxLen) || spec.maxLen < 2 || spec.maxLen > 65536) {
    fail(where, 'maxLen', undefined, `maxLen must be an integer in [2, 65536] (SOT and EOT), got ${spec.maxLen}`);
  }
  return { index };
}

/** The head of an HF `tokenizer.json` for CLIP (everything before the post-processor): the pipeline both the
 *  library's config and the exported file describe. */
function hfPipelineHead(addedTokens: readonly ClipAddedToken[]) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens.map((t) => ({
      id: t.id,
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: t.normalized,
      special: t.special,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_PRETOKENIZE_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
  };
}

/** The library's config: CLIP's pipeline, always built here (the lower-case fix is applied before it, see above). */
function engineConfig(spec: ClipBpeSpec): { json: object; config: object } {
  const json = {
    ...hfPipelineHead(spec.addedTokens),
    post_processor: null,
    decoder: null,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: spec.eot,
      continuing_subword_prefix: '',
      end_of_word_suffix: CLIP_WORD_SUFFIX,
      fuse_unk: false,
      byte_fallback: false,
      // Object.fromEntries defines own properties, so a token such as "__proto__" stays an ordinary key
      vocab: Object.fromEntries(spec.vocab.map((t, i) => [t, i])),
      merges: spec.merges.map(([a, b]) => [a, b]),
    },
  };
  return { json, config: { model_max_length: spec.maxLen, bos_token: spec.sot, eos_token: spec.eot } };
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

export class ClipBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly maxLen: number;
  readonly sotId: number;
  readonly eotId: number;
  /** the id encodeBatch pads with (see the module comment for why 0 is safe) */
  readonly padId = CLIP_PAD_ID;
  private readonly spec: ClipBpeSpec;
  private readonly engine: HfTokenizer;
  private readonly specialIds: Set<number>;
  private byteDecoder?: Map<string, number>;

  /** Validates `spec`; `where` names the source file / keys in errors (loaders pass their own). */
  constructor(spec: ClipBpeSpec, where: Where = defaultWhere) {
    const { index } = validateSpec(spec, where);
    this.spec = {
      vocab: Object.freeze([...spec.vocab]),
      merges: Object.freeze(spec.merges.map(([a, b]) => Object.freeze([a, b] as const))),
      addedTokens: Object.freeze(spec.addedTokens.map((t) => Object.freeze({ ...t }))),
      sot: spec.sot,
      eot: spec.eot,
      maxLen: spec.maxLen,
    };
    this.vocabSize = spec.vocab.length;
    this.maxLen = spec.maxLen;
    this.sotId = index.get(spec.sot)!;
    this.eotId = index.get(spec.eot)!;
    this.specialIds = new Set(spec.addedTokens.filter((t) => t.special).map((t) => t.id));
    const { json, config } = engineConfig(this.spec);
    this.engine = new HfTokenizer(json, config);
  }

  /** tokens by id */
  get vocabulary(): readonly string[] {
    return this.spec.vocab;
  }

  get merges(): ReadonlyArray<readonly [string, string]> {
    return this.spec.merges;
  }

  get addedTokens(): readonly ClipAddedToken[] {
    return this.spec.addedTokens;
  }

  get sot(): string {
    return this.spec.sot;
  }

  get eot(): string {
    return this.spec.eot;
  }

  /** ids of one chunk, without SOT / EOT */
  private chunkIds(text: string): number[] {
    // Final_Sigma is the one context rule of toLowerCase; HF lower-cases each char alone (see module comment)
    return this.engine.encode(text.replace(/\u03a3/g, '\u03c3'), { add_special_tokens: false }).ids;
  }

  /**
   * Content ids (no SOT / EOT), at least the first `limit` of them when the text has that many. Texts are cut at
   * whitespace into chunks: whitespace separates pre-tokens, is dropped, and no normalisation step or added token
   * reaches across it, so the ids are those of the whole text; a megabyte caption costs one chunk, not a megabyte.
   */
  contentIds(text: string, limit = Number.POSITIVE_INFINITY): number[] {
    if (typeof text !== 'string') throw new TypeError(`clip tokenizer: expected a string, got ${typeof text}`);
    if (text.length <= CHUNK_CHARS) return this.chunkIds(text);
    const out: number[] = [];
    let pos = 0;
    while (pos < text.length && out.length < limit) {
      let cut = Math.min(text.length, pos + CHUNK_CHARS);
      // extend to the next whitespace character (a long run without whitespace is one chunk)
      while (cut < text.length && !WS_CHAR_RE.test(text[cut])) cut++;
      const ids = this.chunkIds(text.slice(pos, cut));
      for (const id of ids) out.push(id);
      pos = cut;
    }
    return out;
  }

  /** SOT, the first maxLen - 2 content ids, EOT (EOT is always the last id). */
  encode(text: string): number[] {
    const room = this.maxLen - 2;
    const body = this.contentIds(text, room);
    if (body.length > room) body.length = room;
    return [this.sotId, ...body, this.eotId];
  }

  /** [texts.length, maxLen] int32, right-padded with 0 (safe: the causal tower pools at EOT, see module comment) */
  encodeBatch(texts: string[]): Int32Array {
    const L = this.maxLen;
    const out = new Int32Array(texts.length * L); // zero-filled = padding
    for (let i = 0; i < texts.length; i++) out.set(this.encode(texts[i]), i * L);
    return out;
  }

  /** tokens for ids (for debugging and attack reports) */
  tokens(ids: ArrayLike<number>): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) out.push(this.tokenOf(ids[i]));
    return out;
  }

  private tokenOf(id: number): string {
    const t = Number.isInteger(id) ? this.spec.vocab[id] : undefined;
    if (t === undefined) throw new RangeError(`clip tokenizer: id ${id} is outside [0, ${this.vocabSize})`);
    return t;
  }

  /**
   * Text for ids as encode / encodeBatch produce them: special tokens dropped, anything after the last EOT ignored
   * (encodeBatch's padding), "</w>" read as a word end (a space), bytes decoded as UTF-8 (invalid -> U+FFFD).
   * Not an exact inverse: normalisation and spacing are lost, as in HF's decode.
   */
  decode(ids: ArrayLike<number>): string {
    if (!this.byteDecoder) {
      const { byByte } = bytesToUnicode();
      this.byteDecoder = new Map(byByte.map((ch, b) => [ch, b]));
    }
    let end = ids.length;
    for (let i = ids.length - 1; i >= 0; i--) {
      if (ids[i] === this.eotId) {
        end = i;
        break;
      }
    }
    const words: string[] = [];
    let bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length) words.push(utf8Decoder.decode(Uint8Array.from(bytes)));
      bytes = [];
    };
    for (let i = 0; i < end; i++) {
      const id = ids[i];
      const tok = this.tokenOf(id);
      if (this.specialIds.has(id)) {
        flush();
        continue;
      }
      const wordEnd = tok.endsWith(CLIP_WORD_SUFFIX);
      const body = wordEnd ? tok.slice(0, -CLIP_WORD_SUFFIX.length) : tok;
      for (const ch of body) {
        const b = this.byteDecoder.get(ch);
        if (b === undefined) {
          // an added non-byte-level token: keep it verbatim
          flush();
          words.push(body);
          break;
        }
        bytes.push(b);
      }
      if (wordEnd) flush();
    }
    flush();
    return words.join(' ');
  }

  toJSON(): ClipTokenizerJSON {
    return {
      format: CLIP_TOKENIZER_FORMAT,
      vocabSize: this.vocabSize,
      maxLen: this.maxLen,
      normalization: CLIP_NORMALIZATION,
      pretokenizer: CLIP_PRETOKENIZE_PATTERN,
      wordSuffix: CLIP_WORD_SUFFIX,
      specials: { sot: this.sotId, eot: this.eotId, pad: CLIP_PAD_ID },
      // fixed key order: the JSON is hashed into the artifact id, whichever loader built the tokenizer
      addedTokens: this.spec.addedTokens.map((t) => ({ id: t.id, content: t.content, normalized: t.normalized, special: t.special })),
      vocab: [...this.spec.vocab],
      merges: this.spec.merges.map(([a, b]) => `${a} ${b}`),
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Manyfold's serialised form

const nonNegInt = z.number().int().min(0);

export const clipTokenizerJsonSchema = z
  .object({
    format: z.literal(CLIP_TOKENIZER_FORMAT),
    vocabSize: z.number().int().min(514),
    maxLen: z.number().int().min(2).max(65536),
    normalization: z.literal(CLIP_NORMALIZATION),
    pretokenizer: z.literal(CLIP_PRETOKENIZE_PATTERN),
    wordSuffix: z.literal(CLIP_WORD_SUFFIX),
    specials: z.object({ sot: nonNegInt, eot: nonNegInt, pad: z.literal(CLIP_PAD_ID) }).strict(),
    addedTokens: z.array(
      z.object({ id: nonNegInt, content: z.string().min(1), normalized: z.boolean(), special: z.boolean() }).strict(),
    ),
    vocab: z.array(z.string().min(1, 'empty token')),
    merges: z.array(z.string().regex(/^[^ ]+ [^ ]+$/, 'a merge is two tokens separated by one space')),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.vocab.length !== v.vocabSize) {
      ctx.addIssue({ code: 'custom', path: ['vocabSize'], message: `vocabSize ${v.vocabSize} != vocab.length ${v.vocab.length}` });
    }
    for (const k of ['sot', 'eot'] as const) {
      const id = v.specials[k];
      if (!v.addedTokens.some((t) => t.id === id)) {
        ctx.addIssue({ code: 'custom', path: ['specials', k], message: `id ${id} is not an added token` });
      }
    }
  });

export type ClipTokenizerJSON = z.infer<typeof clipTokenizerJsonSchema>;

/** Rebuild a CLIP tokenizer from its Manyfold JSON (validated; errors name the field). */
export function clipTokenizerFromJSON(json: unknown): ClipBpeTokenizer {
  const parsed = clipTokenizerJsonSchema.safeParse(json);
  if (!parsed.success) {
    throw new ClipTokenizerError(`invalid CLIP tokenizer JSON: ${formatZodIssues(parsed.error, 5)}`, 'tokenizer JSON');
  }
  const v = parsed.data;
  return new ClipBpeTokenizer({
    vocab: v.vocab,
    merges: v.merges.map((m) => {
      const sp = m.indexOf(' ');
      return [m.slice(0, sp), m.slice(sp + 1)] as const;
    }),
    addedTokens: v.addedTokens,
    sot: v.vocab[v.specials.sot],
    eot: v.vocab[v.specials.eot],
    maxLen: v.maxLen,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Export to Hugging Face / open_clip files

/** JSON object text with keys in the given order, written by hand so no key is ever treated as special. */
function objectText(entries: Array<[string, string]>, indent: string): string {
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${indent}  ${JSON.stringify(k)}: ${v}`).join(',\n')}\n${indent}}`;
}

/**
 * Files that make the tokenizer loadable by transformers' CLIPTokenizer / CLIPTokenizerFast (and by
 * clipTokenizerFromDir): `vocab.json`, `merges.txt`, `tokenizer.json`, `tokenizer_config.json`,
 * `special_tokens_map.json`. HF pads with EOT (`pad_token`); Manyfold's own padding is 0; both pool the same.
 */
export function exportClipTokenizerFiles(tok: ClipBpeTokenizer): Record<string, string> {
  const vocabEntries = (indent: string): string =>
    objectText(
      tok.vocabulary.map((t, i) => [t, String(i)]),
      indent,
    );
  const mergeLines = tok.merges.map(([a, b]) => `${a} ${b}`);
  const head = {
    ...hfPipelineHead(tok.addedTokens),
    post_processor: {
      type: 'RobertaProcessing',
      sep: [tok.eot, tok.eotId],
      cls: [tok.sot, tok.sotId],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  };
  const headText = JSON.stringify(head, null, 2);
  const modelText =
    `{\n    "type": "BPE",\n    "dropout": null,\n    "unk_token": ${JSON.stringify(tok.eot)},\n` +
    `    "continuing_subword_prefix": "",\n    "end_of_word_suffix": ${JSON.stringify(CLIP_WORD_SUFFIX)},\n` +
    `    "fuse_unk": false,\n    "byte_fallback": false,\n    "vocab": ${vocabEntries('    ')},\n` +
    `    "merges": [\n${mergeLines.map((m) => `      ${JSON.stringify(m)}`).join(',\n')}\n    ]\n  }`;
  const tokenizerJson = `${headText.slice(0, -2)},\n  "model": ${modelText}\n}\n`;
  const addedDecoder = Object.fromEntries(
    tok.addedTokens.map((t) => [
      String(t.id),
      { content: t.content, lstrip: false, normalized: t.normalized, rstrip: false, single_word: false, special: t.special },
    ]),
  );
  const tokenizerConfig = {
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    bos_token: tok.sot,
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: tok.eot,
    errors: 'replace',
    model_max_length: tok.maxLen,
    pad_token: tok.eot,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: tok.eot,
  };
  const specialTokensMap = { bos_token: tok.sot, eos_token: tok.eot, pad_token: tok.eot, unk_token: tok.eot };
  return {
    'vocab.json': `${vocabEntries('')}\n`,
    'merges.txt': `#version: 0.2\n${mergeLines.join('\n')}\n`,
    'tokenizer.json': tokenizerJson,
    'tokenizer_config.json': `${JSON.stringify(tokenizerConfig, null, 2)}\n`,
    'special_tokens_map.json': `${JSON.stringify(specialTokensMap, null, 2)}\n`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Import from a checkpoint's files

export interface ClipTokenizerLoadOptions {
  /** context length; default: tokenizer_config.json's model_max_length when sensible, else 77 */
  maxLen?: number;
}

/** What a directory may hold, by file name (contents as bytes). */
export type ClipTokenizerFiles = ReadonlyMap<string, Uint8Array>;

export const OPEN_CLIP_VOCAB_FILES = ['bpe_simple_vocab_16e6.txt.gz', 'bpe_simple_vocab_16e6.txt'] as const;
/** the files clipTokenizerFromDir reads when present */
export const CLIP_TOKENIZER_FILES = [
  'tokenizer.json',
  'vocab.json',
  'merges.txt',
  ...OPEN_CLIP_VOCAB_FILES,
  'tokenizer_config.json',
  'special_tokens_map.json',
] as const;

/** no real tokenizer file is near this; bounds what a hostile directory can make us allocate */
export const MAX_TOKENIZER_FILE_BYTES = 64 * 1024 * 1024;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function text(file: string, bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new ClipTokenizerError(`${file}: not valid UTF-8`, file);
  }
}

function parseJson(file: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(text(file, bytes));
  } catch (e) {
    if (e instanceof ClipTokenizerError) throw e;
    throw new ClipTokenizerError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** token -> id object (vocab.json or tokenizer.json's model.vocab) -> tokens by id, ids checked to be 0..n-1 */
function vocabFromObject(raw: unknown, file: string, key: string): string[] {
  if (!isRecord(raw)) throw new ClipTokenizerError(`${file}: ${key || '(root)'} must be an object of token -> id`, file, key);
  const entries = Object.entries(raw);
  const vocab: string[] = new Array(entries.length);
  for (const [tok, id] of entries) {
    const at = key ? `${key}.${tok}` : tok;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      throw new ClipTokenizerError(
        `${file}: token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}; ids must be the integers 0..${entries.length - 1}`,
        file,
        at,
      );
    }
    if (vocab[id] !== undefined) {
      throw new ClipTokenizerError(`${file}: id ${id} is used by both ${JSON.stringify(vocab[id])} and ${JSON.stringify(tok)}`, file, at);
    }
    vocab[id] = tok;
  }
  return vocab;
}

function mergeFromLine(line: string, file: string, key: string): [string, string] {
  // HF and open_clip split merge lines on whitespace; tokens never contain a space (bytes map to visible chars)
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new ClipTokenizerError(`${file}: ${key}: a merge is two tokens separated by a space, got ${JSON.stringify(line)}`, file, key);
  }
  return [parts[0], parts[1]];
}

/** merges.txt / bpe_simple_vocab: a header line, then one merge per line; at most CLIP_MAX_MERGES are read */
function mergesFromText(content: string, file: string, header: RegExp): Array<[string, string]> {
  const lines = content.split('\n');
  if (!header.test(lines[0] ?? '')) {
    throw new ClipTokenizerError(`${file}: line 1: expected the "#version: 0.2" header line, got ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`, file, 'line 1');
  }
  const merges: Array<[string, string]> = [];
  for (let i = 1; i < lines.length && merges.length < CLIP_MAX_MERGES; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line.trim() === '') {
      // only trailing blank lines are allowed (a blank line inside would silently shift every later id)
      if (lines.slice(i + 1).some((l) => l.trim() !== '')) {
        throw new ClipTokenizerError(`${file}: line ${i + 1}: blank line between merges`, file, `line ${i + 1}`);
      }
      break;
    }
    merges.push(mergeFromLine(line, file, `line ${i + 1}`));
  }
  return merges;
}

/** a special token in tokenizer_config.json / special_tokens_map.json: a string or an AddedToken object */
const specialTokenField = z.union([z.string().min(1), z.object({ content: z.string().min(1), normalized: z.boolean().optional() }).passthrough()]);

const tokenizerConfigSchema = z
  .object({
    model_max_length: z.number().optional(),
    bos_token: specialTokenField.nullable().optional(),
    eos_token: specialTokenField.nullable().optional(),
    added_tokens_decoder: z
      .record(z.string().regex(/^\d+$/, 'keys are ids'), z.object({ content: z.string().min(1), normalized: z.boolean().optional(), special: z.boolean().optional() }).passthrough())
      .optional(),
  })
  .passthrough();

const specialTokensMapSchema = z
  .object({ bos_token: specialTokenField.nullable().optional(), eos_token: specialTokenField.nullable().optional() })
  .passthrough();

function zodFail(file: string, error: z.ZodError): never {
  const issue = error.issues[0];
  const key = issue.path.join('.');
  throw new ClipTokenizerError(`${file}: ${key || '(root)'}: ${issue.message}`, file, key);
}

interface SideConfig {
  maxLen?: number;
  sot?: { content: string; normalized?: boolean };
  eot?: { content: string; normalized?: boolean };
  /** added-token flags by content from tokenizer_config.json's added_tokens_decoder */
  flags: Map<string, { normalized?: boolean; special?: boolean; id: number }>;
}

function readSideConfig(files: ClipTokenizerFiles): SideConfig {
  const side: SideConfig = { flags: new Map() };
  const asToken = (v: z.infer<typeof specialTokenField> | null | undefined): { content: string; normalized?: boolean } | undefined =>
    v == null ? undefined : typeof v === 'string' ? { content: v } : { content: v.content, normalized: v.normalized };
  const stm = files.get('special_tokens_map.json');
  if (stm) {
    const p = specialTokensMapSchema.safeParse(parseJson('special_tokens_map.json', stm));
    if (!p.success) zodFail('special_tokens_map.json', p.error);
    side.sot = asToken(p.data.bos_token);
    side.eot = asToken(p.data.eos_token);
  }
  const tc = files.get('tokenizer_config.json');
  if (tc) {
    const p = tokenizerConfigSchema.safeParse(parseJson('tokenizer_config.json', tc));
    if (!p.success) zodFail('tokenizer_config.json', p.error);
    side.sot = asToken(p.data.bos_token) ?? side.sot;
    side.eot = asToken(p.data.eos_token) ?? side.eot;
    const m = p.data.model_max_length;
    // HF writes 1e30 ("no limit") for tokenizers without one: that is not a context length
    if (m !== undefined && Number.isInteger(m) && m >= 2 && m <= 65536) side.maxLen = m;
    for (const [id, t] of Object.entries(p.data.added_tokens_decoder ?? {})) {
      side.flags.set(t.content, { normalized: t.normalized, special: t.special, id: Number(id) });
    }
  }
  return side;
}

function expectType(file: string, key: string, value: unknown, type: string): Record<string, unknown> {
  if (!isRecord(value) || value.type !== type) {
    throw new ClipTokenizerError(
      `${file}: ${key}: expected CLIP's ${type}, got ${JSON.stringify(value)?.slice(0, 160)}; this tokenizer.json is not CLIPTokenizerFast's ` +
        '(files saved by transformers < 4.17 used another pipeline: delete tokenizer.json to load vocab.json + merges.txt instead)',
      file,
      key,
    );
  }
  return value;
}

/** tokenizer.json must describe CLIP's pipeline; anything else would be tokenised differently than its model expects */
function checkHfPipeline(tj: Record<string, unknown>, file: string): void {
  const norm = expectType(file, 'normalizer', tj.normalizer, 'Sequence');
  const ns = Array.isArray(norm.normalizers) ? norm.normalizers : [];
  const okNorm =
    ns.length === 3 &&
    isRecord(ns[0]) && ns[0].type === 'NFC' &&
    isRecord(ns[1]) && ns[1].type === 'Replace' && isRecord(ns[1].pattern) && ns[1].pattern.Regex === '\\s+' && ns[1].content === ' ' &&
    isRecord(ns[2]) && ns[2].type === 'Lowercase';
  if (!okNorm) expectType(file, 'normalizer.normalizers', ns, 'Sequence[NFC, Replace(\\s+ -> " "), Lowercase]');
  const pre = expectType(file, 'pre_tokenizer', tj.pre_tokenizer, 'Sequence');
  const ps = Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [];
  const split = ps[0];
  const bl = ps[1];
  const okPre =
    ps.length === 2 &&
    isRecord(split) && split.type === 'Split' && isRecord(split.pattern) && split.pattern.Regex === CLIP_PRETOKENIZE_PATTERN &&
    String(split.behavior).toLowerCase() === 'removed' && split.invert === true &&
    // use_regex (GPT-2's split) is a no-op after CLIP's split, so either value gives the same pieces
    isRecord(bl) && bl.type === 'ByteLevel' && bl.add_prefix_space !== true;
  if (!okPre) expectType(file, 'pre_tokenizer.pretokenizers', ps, 'Sequence[Split(CLIP regex, removed, invert), ByteLevel(no prefix space)]');
  const model = tj.model as Record<string, unknown>;
  const want: Array<[string, unknown, unknown[]]> = [
    ['type', model.type, ['BPE']],
    ['end_of_word_suffix', model.end_of_word_suffix, [CLIP_WORD_SUFFIX]],
    ['continuing_subword_prefix', model.continuing_subword_prefix, ['', null, undefined]],
    ['dropout', model.dropout, [null, undefined]],
    ['byte_fallback', model.byte_fallback, [false, undefined]],
  ];
  for (const [k, v, allowed] of want) {
    if (!allowed.includes(v)) {
      throw new ClipTokenizerError(`${file}: model.${k}: expected ${allowed.filter((a) => a !== undefined).map((a) => JSON.stringify(a)).join(' or ')}, got ${JSON.stringify(v)}`, file, `model.${k}`);
    }
  }
}

/** the [SOT, EOT] contents a tokenizer.json's post-processor adds, or undefined when it adds none */
function postProcessorSpecials(pp: unknown, file: string): [string, string] | undefined {
  if (pp == null) return undefined;
  if (isRecord(pp) && pp.type === 'RobertaProcessing' && Array.isArray(pp.cls) && Array.isArray(pp.sep)) {
    return [String(pp.cls[0]), String(pp.sep[0])];
  }
  if (isRecord(pp) && pp.type === 'TemplateProcessing' && Array.isArray(pp.single) && pp.single.length === 3) {
    const [a, b, c] = pp.single as unknown[];
    const sp = (x: unknown): string | undefined =>
      isRecord(x) && isRecord(x.SpecialToken) && typeof x.SpecialToken.id === 'string' ? x.SpecialToken.id : undefined;
    if (sp(a) && isRecord(b) && isRecord(b.Sequence) && sp(c)) return [sp(a)!, sp(c)!];
  }
  throw new ClipTokenizerError(
    `${file}: post_processor: expected RobertaProcessing or TemplateProcessing adding SOT ... EOT, got ${JSON.stringify(pp).slice(0, 160)}`,
    file,
    'post_processor',
  );
}

/**
 * Build a CLIP tokenizer from a checkpoint's tokenizer files, preferring `tokenizer.json`, else `vocab.json` +
 * `merges.txt`, else open_clip's `bpe_simple_vocab_16e6.txt(.gz)`. `tokenizer_config.json` /
 * `special_tokens_map.json` give the context length and special tokens when present. Worker-safe (no node:fs).
 */
export async function clipTokenizerFromFiles(files: ClipTokenizerFiles, opts: ClipTokenizerLoadOptions = {}): Promise<ClipBpeTokenizer> {
  const side = readSideConfig(files);
  const maxLen = opts.maxLen ?? side.maxLen ?? CLIP_DEFAULT_MAX_LEN;

  const tjBytes = files.get('tokenizer.json');
  if (tjBytes) {
    const file = 'tokenizer.json';
    const tj = parseJson(file, tjBytes);
    if (!isRecord(tj) || !isRecord(tj.model)) throw new ClipTokenizerError(`${file}: model: missing (not a Hugging Face tokenizer.json)`, file, 'model');
    checkHfPipeline(tj, file);
    const vocab = vocabFromObject(tj.model.vocab, file, 'model.vocab');
    const rawMerges = tj.model.merges;
    if (!Array.isArray(rawMerges)) throw new ClipTokenizerError(`${file}: model.merges must be an array`, file, 'model.merges');
    const merges = rawMerges.map((m, i): [string, string] => {
      const key = `model.merges[${i}]`;
      if (typeof m === 'string') return mergeFromLine(m, file, key);
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
      throw new ClipTokenizerError(`${file}: ${key}: expected "a b" or ["a", "b"], got ${JSON.stringify(m)}`, file, key);
    });
    const rawAdded = tj.added_tokens ?? [];
    if (!Array.isArray(rawAdded)) throw new ClipTokenizerError(`${file}: added_tokens must be an array`, file, 'added_tokens');
    const addedSchema = z.object({ id: nonNegInt, content: z.string().min(1), normalized: z.boolean().optional(), special: z.boolean().optional() }).passthrough();
    const added: ClipAddedToken[] = rawAdded.map((t, i) => {
      const p = addedSchema.safeParse(t);
      if (!p.success) zodFail(file, new z.ZodError(p.error.issues.map((iss) => ({ ...iss, path: ['added_tokens', i, ...iss.path] }))));
      // HF's default for an AddedToken read without the flag: normalized = !special
      const special = p.data.special ?? false;
      return { id: p.data.id, content: p.data.content, special, normalized: p.data.normalized ?? !special };
    });
    // added tokens may extend the model vocabulary at its end (HF allows it; CLIP's live inside it)
    for (const t of [...added].sort((a, b) => a.id - b.id)) {
      if (t.id === vocab.length) vocab.push(t.content);
    }
    const fromPost = postProcessorSpecials(tj.post_processor, file);
    const sot = side.sot?.content ?? fromPost?.[0] ?? CLIP_SOT;
    const eot = side.eot?.content ?? fromPost?.[1] ?? CLIP_EOT;
    if (fromPost && (fromPost[0] !== sot || fromPost[1] !== eot)) {
      throw new ClipTokenizerError(
        `${file}: post_processor adds ${JSON.stringify(fromPost)} but the tokenizer config names bos/eos ${JSON.stringify([sot, eot])}`,
        file,
        'post_processor',
      );
    }
    if (!fromPost) {
      throw new ClipTokenizerError(`${file}: post_processor: none, so HF would add no SOT / EOT; not CLIPTokenizerFast's file`, file, 'post_processor');
    }
    return new ClipBpeTokenizer({ vocab, merges, addedTokens: added, sot, eot, maxLen }, (what, index) => ({
      file,
      key:
        what === 'merge' ? `model.merges[${index}]` : what === 'vocab' ? (index === undefined ? 'model.vocab' : `model.vocab (id ${index})`) : what === 'added' ? `added_tokens[${index}]` : what === 'special' ? 'post_processor' : 'model_max_length',
    }));
  }

  const vj = files.get('vocab.json');
  const mt = files.get('merges.txt');
  if (vj || mt) {
    if (!vj) throw new ClipTokenizerError('vocab.json: missing (merges.txt is present; both are needed)', 'vocab.json');
    if (!mt) throw new ClipTokenizerError('merges.txt: missing (vocab.json is present; both are needed)', 'merges.txt');
    const vocab = vocabFromObject(parseJson('vocab.json', vj), 'vocab.json', '');
    const merges = mergesFromText(text('merges.txt', mt), 'merges.txt', /^#version/);
    const sot = side.sot?.content ?? CLIP_SOT;
    const eot = side.eot?.content ?? CLIP_EOT;
    const added = specialsAsAdded(vocab, sot, eot, side, 'vocab.json');
    return new ClipBpeTokenizer({ vocab, merges, addedTokens: added, sot, eot, maxLen }, (what, index) => {
      if (what === 'merge') return { file: 'merges.txt', key: `line ${(index ?? 0) + 2}` };
      if (what === 'maxLen') return { file: 'tokenizer_config.json', key: 'model_max_length' };
      return { file: 'vocab.json', key: what === 'vocab' && index !== undefined ? `id ${index}` : what === 'special' ? 'special tokens' : undefined };
    });
  }

  for (const name of OPEN_CLIP_VOCAB_FILES) {
    const bytes = files.get(name);
    if (!bytes) continue;
    const content = name.endsWith('.gz') ? text(name, await gunzipBounded(bytes, name)) : text(name, bytes);
    // open_clip's first line is a header ("bpe_simple_vocab_16e6.txt#version: 0.2"), skipped unread
    const merges = mergesFromText(content, name, /./);
    const { ordered } = bytesToUnicode();
    const sot = side.sot?.content ?? OPEN_CLIP_SOT;
    const eot = side.eot?.content ?? OPEN_CLIP_EOT;
    const vocab = [...ordered, ...ordered.map((c) => c + CLIP_WORD_SUFFIX), ...merges.map(([a, b]) => a + b), sot, eot];
    const added = specialsAsAdded(vocab, sot, eot, side, name);
    return new ClipBpeTokenizer({ vocab, merges, addedTokens: added, sot, eot, maxLen }, (what, index) => ({
      file: name,
      key: what === 'merge' ? `line ${(index ?? 0) + 2}` : what === 'vocab' && index !== undefined ? `vocabulary id ${index} (from line ${index - 512 + 2})` : undefined,
    }));
  }

  throw new ClipTokenizerError(
    'no CLIP tokenizer files: expected tokenizer.json, or vocab.json + merges.txt (Hugging Face), or bpe_simple_vocab_16e6.txt.gz ' +
      "(open_clip's vocabulary: copy it from the open_clip package, src/open_clip/bpe_simple_vocab_16e6.txt.gz)",
  );
}

function specialsAsAdded(vocab: readonly string[], sot: string, eot: string, side: SideConfig, file: string): ClipAddedToken[] {
  return [sot, eot].map((content) => {
    const id = vocab.indexOf(content);
    if (id < 0) throw new ClipTokenizerError(`${file}: special token ${JSON.stringify(content)} is not in the vocabulary`, file, content);
    const flag = side.flags.get(content);
    if (flag && flag.id !== id) {
      throw new ClipTokenizerError(`tokenizer_config.json: added_tokens_decoder gives ${JSON.stringify(content)} id ${flag.id}, ${file} gives ${id}`, 'tokenizer_config.json', `added_tokens_decoder.${flag.id}`);
    }
    // transformers' CLIPTokenizer makes its bos / eos AddedTokens with normalized = true unless configured
    const fromSide = content === sot ? side.sot?.normalized : side.eot?.normalized;
    return { id, content, normalized: flag?.normalized ?? fromSide ?? true, special: flag?.special ?? true };
  });
}

/** open_clip's vocabulary is ~1.3 MB uncompressed; refuse anything that inflates past this */
export const MAX_GUNZIP_BYTES = 32 * 1024 * 1024;

/** gunzip with the web DecompressionStream (Node 18+ and Workers), stopping at MAX_GUNZIP_BYTES */
async function gunzipBounded(bytes: Uint8Array, file: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    // slice(): a copy backed by a plain ArrayBuffer, which Blob requires
    const stream = new Blob([bytes.slice()]).stream().pipeThrough(new DecompressionStream('gzip'));
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_GUNZIP_BYTES) {
        await reader.cancel();
        throw new ClipTokenizerError(`${file}: inflates past ${MAX_GUNZIP_BYTES} bytes; not a BPE vocabulary`, file);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof ClipTokenizerError) throw e;
    throw new ClipTokenizerError(`${file}: not a valid gzip file (${(e as Error).message})`, file);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * Read a checkpoint directory's tokenizer (see clipTokenizerFromFiles for the order of preference). Node only:
 * node:fs is imported here, lazily, so the tokenizer class stays bundle-safe for the Worker.
 */
export async function clipTokenizerFromDir(dir: string, opts: ClipTokenizerLoadOptions = {}): Promise<ClipBpeTokenizer> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const files = new Map<string, Uint8Array>();
  for (const name of CLIP_TOKENIZER_FILES) {
    const p = path.join(dir, name);
    let size: number;
    try {
      const st = await fs.stat(p);
      if (!st.isFile()) continue;
      size = st.size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    if (size > MAX_TOKENIZER_FILE_BYTES) {
      throw new ClipTokenizerError(`${name}: ${size} bytes is larger than any tokenizer file (limit ${MAX_TOKENIZER_FILE_BYTES})`, name);
    }
    files.set(name, new Uint8Array(await fs.readFile(p)));
  }
  try {
    return await clipTokenizerFromFiles(files, opts);
  } catch (e) {
    if (e instanceof ClipTokenizerError && !e.file) throw new ClipTokenizerError(`${dir}: ${e.message}`, e.file, e.key);
    throw e;
  }
}
