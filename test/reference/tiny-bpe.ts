/**
 * A tiny CLIP-style byte-level BPE vocabulary, learned deterministically from a built-in caption corpus, written
 * in the three formats real checkpoints ship:
 * - `vocab.json` + `merges.txt` (first line `#version: 0.2`), as in a Hugging Face CLIP directory;
 * - `tokenizer.json`, equivalent to what CLIPTokenizerFast saves (NFC + `\s+`->" " + Lowercase normaliser; Split on
 *   CLIP's regex then ByteLevel; BPE with `end_of_word_suffix` "</w>"; RobertaProcessing adding SOT / EOT);
 * - optionally open_clip's `bpe_simple_vocab_16e6.txt` (a header line, then the merges).
 *
 * Id layout as in CLIP: the 256 byte-level characters in `bytes_to_unicode` order, the same 256 with "</w>", one id
 * per merge (the merged string, in merge order), then `<|startoftext|>` and `<|endoftext|>` as the last two ids, so
 * EOT is the largest id (CLIP's legacy pooling takes the argmax of the ids).
 *
 * Training is ordinary BPE over word counts: the most frequent adjacent pair wins, ties broken by the code-unit
 * order of "left right", and a pair whose merged string already exists is never used (CLIP's vocabulary has no
 * duplicates and open_clip rebuilds the vocabulary from the merges alone, so a duplicate would shift every id).
 * Nothing depends on Map iteration of unordered input or on the clock: every run writes the same bytes.
 *
 * Usage: `npx tsx test/reference/tiny-bpe.ts --out DIR [--open-clip]`
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIP_PRETOKENIZE_PATTERN, bytesToUnicode } from '../../src/model/clip-tokenizer.js';

/** A few dozen captions in the style of COCO / Flickr30k, plus a little punctuation, digits and accents. */
const CORPUS: readonly string[] = [
  'a man riding a wave on top of a surfboard',
  'a woman is standing in the kitchen cooking dinner',
  'two dogs are playing with a ball in the park',
  'a cat sitting on a wooden bench next to a window',
  'a group of people standing around a large table',
  'a red double decker bus driving down the street',
  'a plate of food with broccoli and rice on a table',
  'a young boy holding a baseball bat on a field',
  'an airplane flying through a clear blue sky',
  'a bowl of fruit sitting on a kitchen counter',
  'a man and a woman sitting on a bench in the park',
  'a black and white photo of a train at a station',
  'a giraffe standing next to a tall green tree',
  'a bathroom with a white sink and a large mirror',
  'a herd of elephants walking across a dry grass field',
  'a little girl eating a slice of pizza at the table',
  'people are walking down a busy city street at night',
  'a dog is running on the beach near the water',
  'a small brown horse standing in a green field',
  'the woman is holding an umbrella in the rain',
  'a pizza with cheese and tomatoes on a wooden board',
  'two men playing frisbee on a sunny day',
  'a laptop computer sitting on top of a desk',
  'a person riding a bike down a dirt road',
  'a bird sitting on a branch of a tree',
  'a living room with a couch and a television',
  'a child is flying a kite on the beach',
  'a red fire hydrant on the side of a street',
  'a group of zebras grazing in the grass',
  'a man is skiing down a snowy mountain',
  "it's a sunny day and the dog's ball is red",
  "don't walk on the grass, we'll sit on the bench",
  "they're eating lunch; i've got a sandwich!",
  'a café with 2 tables and 12 chairs in 1984',
  'the naïve cat sleeps near the café window',
  'a sign that says "stop" at the corner of 5th street',
  'a clock on a tower showing 10:30 in the morning',
  'three birds sitting on a wire above the street',
  'a woman with a red hat walking her dog',
  'a boat floating on a calm lake at sunset',
  'a sandwich and a cup of coffee on a plate',
  'a skateboarder doing a trick on a ramp',
  'a tennis player swinging a racket at the ball',
  'an old truck parked in front of a building',
  'a blue and white airplane on the runway',
  'a teddy bear sitting on a bed with pillows',
  'a close up of a cake with chocolate frosting',
  'two people riding horses along the beach',
  'a kitchen with stainless steel appliances and wooden cabinets',
  'a cow standing in a field of green grass',
  'a man wearing a suit and tie standing in a room',
  'a motorcycle parked on the side of the road',
  'a baseball player throwing a ball on the field',
  'a vase of flowers sitting on a table',
  'a train traveling down tracks next to a forest',
  'a girl holding a cell phone to her ear',
  'the sheep are grazing on a hill near the farm',
  'a street sign on a pole near a building',
  'a bunch of bananas sitting on top of a table',
  'a surfer riding a large wave in the ocean',
];

/** How many merges to learn at most (training also stops when no pair occurs twice). */
export const TINY_BPE_MAX_MERGES = 400;

export const SOT_TOKEN = '<|startoftext|>';
export const EOT_TOKEN = '<|endoftext|>';
export const WORD_SUFFIX = '</w>';
// the byte alphabet and the pre-tokeniser regex are CLIP's definitions, shared with the tokenizer under test; the
// independent check of both is test/reference/clip_tokenizer_ref.py
export { CLIP_PRETOKENIZE_PATTERN, bytesToUnicode } from '../../src/model/clip-tokenizer.js';
function normalize(text: string): string {
  // the corpus is ASCII plus precomposed accents, so a per-code-point lower-case is all HF's normaliser would do
  let out = '';
  for (const ch of text.normalize('NFC').replace(/\s+/gu, ' ')) out += ch.toLowerCase();
  return out;
}

const utf8 = new TextEncoder();

export interface TinyBpe {
  /** tokens by id (length = vocabSize) */
  vocab: string[];
  /** merges in rank order */
  merges: Array<[string, string]>;
  vocabSize: number;
  sotId: number;
  eotId: number;
}

/** Learn the tiny vocabulary (pure, deterministic). */
export function buildTinyBpe(): TinyBpe {
  const { ordered, byByte } = bytesToUnicode();
  const re = new RegExp(CLIP_PRETOKENIZE_PATTERN, 'gu');
  const counts = new Map<string, number>();
  for (const caption of CORPUS) {
    for (const piece of normalize(caption).match(re) ?? []) {
      let mapped = '';
      for (const b of utf8.encode(piece)) mapped += byByte[b];
      counts.set(mapped, (counts.get(mapped) ?? 0) + 1);
    }
  }
  // words sorted so that training never depends on insertion order
  const words = [...counts.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const segs: string[][] = words.map((w) => {
    const chars = [...w];
    chars[chars.length - 1] += WORD_SUFFIX;
    return chars;
  });
  const freq = words.map((w) => counts.get(w) ?? 0);

  const vocab: string[] = [...ordered, ...ordered.map((c) => c + WORD_SUFFIX)];
  const known = new Set(vocab);
  const merges: Array<[string, string]> = [];
  const banned = new Set<string>();
  while (merges.length < TINY_BPE_MAX_MERGES) {
    const pairCounts = new Map<string, number>();
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      for (let j = 0; j + 1 < s.length; j++) {
        const key = `${s[j]} ${s[j + 1]}`;
        if (!banned.has(key)) pairCounts.set(key, (pairCounts.get(key) ?? 0) + freq[i]);
      }
    }
    let best: string | undefined;
    let bestCount = 1; // a pair must occur at least twice
    for (const [key, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === undefined) break;
    const space = best.indexOf(' ');
    const left = best.slice(0, space);
    const right = best.slice(space + 1);
    const merged = left + right;
    if (known.has(merged)) {
      banned.add(best);
      continue;
    }
    merges.push([left, right]);
    vocab.push(merged);
    known.add(merged);
    for (const s of segs) {
      for (let j = 0; j + 1 < s.length; j++) {
        if (s[j] === left && s[j + 1] === right) s.splice(j, 2, merged);
      }
    }
  }
  vocab.push(SOT_TOKEN, EOT_TOKEN);
  return { vocab, merges, vocabSize: vocab.length, sotId: vocab.length - 2, eotId: vocab.length - 1 };
}

/** JSON of a token -> id map in id order (built by hand: tokens such as "__proto__" must stay plain keys). */
function vocabJson(vocab: readonly string[], indent: string): string {
  const lines = vocab.map((t, i) => `${indent}  ${JSON.stringify(t)}: ${i}`);
  return `{\n${lines.join(',\n')}\n${indent}}`;
}

export interface TinyBpeFiles {
  'vocab.json': string;
  'merges.txt': string;
  'tokenizer.json': string;
  'bpe_simple_vocab_16e6.txt': string;
}

/** The file contents (strings; every file is UTF-8). */
export function tinyBpeFileContents(bpe: TinyBpe = buildTinyBpe()): TinyBpeFiles {
  const mergeLines = bpe.merges.map(([a, b]) => `${a} ${b}`);
  const added = (id: number, content: string): string =>
    `    {\n      "id": ${id},\n      "content": ${JSON.stringify(content)},\n      "single_word": false,\n` +
    `      "lstrip": false,\n      "rstrip": false,\n      "normalized": true,\n      "special": true\n    }`;
  const tokenizerJson =
    `{\n  "version": "1.0",\n  "truncation": null,\n  "padding": null,\n  "added_tokens": [\n` +
    `${added(bpe.sotId, SOT_TOKEN)},\n${added(bpe.eotId, EOT_TOKEN)}\n  ],\n` +
    `  "normalizer": {\n    "type": "Sequence",\n    "normalizers": [\n      { "type": "NFC" },\n` +
    `      { "type": "Replace", "pattern": { "Regex": "\\\\s+" }, "content": " " },\n      { "type": "Lowercase" }\n    ]\n  },\n` +
    `  "pre_tokenizer": {\n    "type": "Sequence",\n    "pretokenizers": [\n` +
    `      { "type": "Split", "pattern": { "Regex": ${JSON.stringify(CLIP_PRETOKENIZE_PATTERN)} }, "behavior": "Removed", "invert": true },\n` +
    `      { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false }\n    ]\n  },\n` +
    `  "post_processor": {\n    "type": "RobertaProcessing",\n    "sep": [${JSON.stringify(EOT_TOKEN)}, ${bpe.eotId}],\n` +
    `    "cls": [${JSON.stringify(SOT_TOKEN)}, ${bpe.sotId}],\n    "trim_offsets": false,\n    "add_prefix_space": false\n  },\n` +
    `  "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },\n` +
    `  "model": {\n    "type": "BPE",\n    "dropout": null,\n    "unk_token": ${JSON.stringify(EOT_TOKEN)},\n` +
    `    "continuing_subword_prefix": "",\n    "end_of_word_suffix": ${JSON.stringify(WORD_SUFFIX)},\n` +
    `    "fuse_unk": false,\n    "byte_fallback": false,\n    "vocab": ${vocabJson(bpe.vocab, '    ')},\n` +
    `    "merges": [\n${mergeLines.map((m) => `      ${JSON.stringify(m)}`).join(',\n')}\n    ]\n  }\n}\n`;
  return {
    'vocab.json': `${vocabJson(bpe.vocab, '')}\n`,
    'merges.txt': `#version: 0.2\n${mergeLines.join('\n')}\n`,
    'tokenizer.json': tokenizerJson,
    'bpe_simple_vocab_16e6.txt': `"bpe_simple_vocab_16e6.txt#version: 0.2\n${mergeLines.join('\n')}\n`,
  };
}

let cached: TinyBpe | undefined;
/** The tiny vocabulary, built once per process. */
export function tinyBpe(): TinyBpe {
  cached ??= buildTinyBpe();
  return cached;
}

export interface WriteTinyBpeOptions {
  /** also write open_clip's `bpe_simple_vocab_16e6.txt` (off by default: HF directories do not have it) */
  openClip?: boolean;
}

/**
 * Write `vocab.json`, `merges.txt` and `tokenizer.json` (and with `openClip`, `bpe_simple_vocab_16e6.txt`) into
 * `dir`, creating it. Byte-identical on every run.
 */
export async function writeTinyBpeFiles(dir: string, opts: WriteTinyBpeOptions = {}): Promise<TinyBpe> {
  const bpe = tinyBpe();
  const files = tinyBpeFileContents(bpe);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'vocab.json'), files['vocab.json']);
  await writeFile(join(dir, 'merges.txt'), files['merges.txt']);
  await writeFile(join(dir, 'tokenizer.json'), files['tokenizer.json']);
  if (opts.openClip) await writeFile(join(dir, 'bpe_simple_vocab_16e6.txt'), files['bpe_simple_vocab_16e6.txt']);
  return bpe;
}

/** Sizes and special ids of the tiny vocabulary (computed once at import; a few ms). */
export const TINY_BPE_VOCAB_SIZE: number = tinyBpe().vocabSize;
export const TINY_BPE_SOT_ID: number = tinyBpe().sotId;
export const TINY_BPE_EOT_ID: number = tinyBpe().eotId;

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  const out = outAt >= 0 ? args[outAt + 1] : undefined;
  const unknown = args.filter((a, i) => a !== '--out' && a !== '--open-clip' && i !== outAt + 1);
  if (!out || unknown.length) {
    process.stderr.write('usage: npx tsx test/reference/tiny-bpe.ts --out DIR [--open-clip]\n');
    process.exit(2);
  }
  const bpe = await writeTinyBpeFiles(out, { openClip: args.includes('--open-clip') });
  process.stdout.write(
    `${JSON.stringify({ dir: out, vocabSize: bpe.vocabSize, merges: bpe.merges.length, sotId: bpe.sotId, eotId: bpe.eotId })}\n`,
  );
}
