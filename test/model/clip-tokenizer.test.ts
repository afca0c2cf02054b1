/**
 * CLIP's BPE tokenizer (src/model/clip-tokenizer.ts) against an independent Python reference.
 *
 * The fixture test/fixtures/clip/tokenizer-ref.json holds awkward texts and the ids that
 * test/reference/clip_tokenizer_ref.py (written from HF CLIPTokenizerFast's / OpenAI's published semantics) gives
 * for them on the tiny vocabulary of test/reference/tiny-bpe.ts, plus the sha256 of the files it read. This test
 * rebuilds those files, checks the hashes (so the vocabulary cannot drift from the fixture unnoticed) and requires
 * identical ids. To regenerate after changing tiny-bpe.ts or the text list:
 *
 *   npx tsx test/reference/tiny-bpe.ts --out /tmp/tiny-bpe
 *   /usr/bin/python3 test/reference/clip_tokenizer_ref.py --dir /tmp/tiny-bpe --out test/fixtures/clip/tokenizer-ref.json
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIP_TOKENIZER_FORMAT,
  ClipBpeTokenizer,
  ClipTokenizerError,
  bytesToUnicode,
  clipTokenizerFromDir,
  clipTokenizerFromFiles,
  clipTokenizerFromJSON,
  exportClipTokenizerFiles,
} from '../../src/model/clip-tokenizer.js';
import { tokenizerFromJSON } from '../../src/model/tokenizer.js';
import {
  TINY_BPE_EOT_ID,
  TINY_BPE_SOT_ID,
  TINY_BPE_VOCAB_SIZE,
  tinyBpe,
  tinyBpeFileContents,
  writeTinyBpeFiles,
} from '../reference/tiny-bpe.js';

interface RefCase {
  text: string;
  ids: number[];
  untruncated: number;
}
interface RefFixture {
  contextLength: number;
  vocabSize: number;
  sotId: number;
  eotId: number;
  sha256: Record<string, string>;
  cases: RefCase[];
}

const fixture = JSON.parse(
  await readFile(new URL('../fixtures/clip/tokenizer-ref.json', import.meta.url), 'utf8'),
) as RefFixture;

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const enc = new TextEncoder();
const files = (entries: Record<string, string | Uint8Array>): Map<string, Uint8Array> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, typeof v === 'string' ? enc.encode(v) : v]));

let dir: string;
let hf: ClipBpeTokenizer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-tok-'));
  await writeTinyBpeFiles(join(dir, 'tiny'), { openClip: true });
  hf = await clipTokenizerFromDir(join(dir, 'tiny'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const expectReferenceIds = (tok: ClipBpeTokenizer, skip: (text: string) => boolean = () => false): void => {
  let compared = 0;
  for (const c of fixture.cases) {
    if (skip(c.text)) continue;
    expect({ text: c.text, ids: tok.encode(c.text) }).toEqual({ text: c.text, ids: c.ids });
    compared++;
  }
  expect(compared).toBeGreaterThan(30);
};

describe('tiny-bpe vocabulary', () => {
  it('is deterministic and is the one the reference read', async () => {
    const a = tinyBpeFileContents();
    await writeTinyBpeFiles(join(dir, 'again'));
    for (const name of ['vocab.json', 'merges.txt', 'tokenizer.json'] as const) {
      const bytes = await readFile(join(dir, 'again', name));
      expect(sha256(bytes), name).toBe(fixture.sha256[name]);
      expect(bytes.toString('utf8')).toBe(a[name]);
    }
  });

  it("has CLIP's layout: bytes, bytes + </w>, merges, then SOT and EOT as the largest ids", () => {
    const bpe = tinyBpe();
    const { ordered } = bytesToUnicode();
    expect(bpe.vocab.slice(0, 256)).toEqual(ordered);
    expect(bpe.vocab.slice(256, 512)).toEqual(ordered.map((c) => `${c}</w>`));
    expect(bpe.vocab.slice(512, 512 + bpe.merges.length)).toEqual(bpe.merges.map(([x, y]) => x + y));
    expect(bpe.vocab[0]).toBe('!'); // as in openai/clip-vit-base-patch32's vocab.json
    expect(bpe.merges.length).toBeGreaterThanOrEqual(200);
    expect([TINY_BPE_VOCAB_SIZE, TINY_BPE_SOT_ID, TINY_BPE_EOT_ID]).toEqual([bpe.vocab.length, bpe.vocab.length - 2, bpe.vocab.length - 1]);
    expect([fixture.vocabSize, fixture.sotId, fixture.eotId]).toEqual([TINY_BPE_VOCAB_SIZE, TINY_BPE_SOT_ID, TINY_BPE_EOT_ID]);
  });
});

describe('CLIP tokenizer vs the independent reference', () => {
  it('tokenizer.json: identical ids on every awkward text', () => {
    expect(hf.vocabSize).toBe(TINY_BPE_VOCAB_SIZE);
    expect([hf.sotId, hf.eotId, hf.maxLen]).toEqual([TINY_BPE_SOT_ID, TINY_BPE_EOT_ID, 77]);
    // the fixture exercises truncation and the specials
    expect(fixture.cases.some((c) => c.untruncated > 77)).toBe(true);
    expect(fixture.cases.some((c) => c.ids.slice(1, -1).includes(fixture.eotId))).toBe(true);
    expectReferenceIds(hf);
  });

  it('vocab.json + merges.txt: identical ids', async () => {
    const t = await clipTokenizerFromFiles(
      files({ 'vocab.json': await readFile(join(dir, 'tiny', 'vocab.json')), 'merges.txt': await readFile(join(dir, 'tiny', 'merges.txt')) }),
    );
    expectReferenceIds(t);
  });

  it("open_clip's bpe_simple_vocab_16e6.txt(.gz): identical ids (its specials are spelled <start_of_text> / <end_of_text>)", async () => {
    const txt = await readFile(join(dir, 'tiny', 'bpe_simple_vocab_16e6.txt'));
    const ocDir = join(dir, 'open_clip');
    await mkdir(ocDir, { recursive: true });
    await writeFile(join(ocDir, 'bpe_simple_vocab_16e6.txt.gz'), gzipSync(txt));
    const gz = await clipTokenizerFromDir(ocDir);
    const plain = await clipTokenizerFromFiles(files({ 'bpe_simple_vocab_16e6.txt': txt }));
    const hasSpecial = (t: string): boolean => t.includes('<|');
    for (const t of [gz, plain]) {
      expect([t.sot, t.eot, t.sotId, t.eotId]).toEqual(['<start_of_text>', '<end_of_text>', TINY_BPE_SOT_ID, TINY_BPE_EOT_ID]);
      expect(t.vocabulary.slice(0, -2)).toEqual(hf.vocabulary.slice(0, -2));
      expectReferenceIds(t, hasSpecial);
      expect(t.encode('a <END_OF_TEXT> b')).toEqual(hf.encode('a <|endoftext|> b'));
    }
  });

  it('export -> import gives identical ids, from tokenizer.json and from vocab.json + merges.txt alone', async () => {
    const out = exportClipTokenizerFiles(hf);
    expect(Object.keys(out).sort()).toEqual(['merges.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    const exDir = join(dir, 'exported');
    await mkdir(exDir, { recursive: true });
    for (const [name, content] of Object.entries(out)) await writeFile(join(exDir, name), content);
    const back = await clipTokenizerFromDir(exDir);
    expectReferenceIds(back);
    expect(back.toJSON()).toEqual(hf.toJSON());
    const { 'tokenizer.json': _dropped, ...slow } = out;
    const back2 = await clipTokenizerFromFiles(files(slow));
    expect(back2.toJSON()).toEqual(hf.toJSON());
    // the exported vocabulary and merges are the tiny-bpe ones, byte for byte
    expect(out['merges.txt']).toBe(tinyBpeFileContents()['merges.txt']);
    expect(JSON.parse(out['vocab.json'])).toEqual(JSON.parse(tinyBpeFileContents()['vocab.json']));
    expect(JSON.parse(out['tokenizer_config.json'])).toMatchObject({ model_max_length: 77, bos_token: '<|startoftext|>', eos_token: '<|endoftext|>' });
  });
});

describe('CLIP tokenizer behaviour', () => {
  it('truncates to maxLen keeping EOT last', async () => {
    const long = fixture.cases.find((c) => c.untruncated > 100)!;
    const ids = hf.encode(long.text);
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(hf.sotId);
    expect(ids[76]).toBe(hf.eotId);
    const short = await clipTokenizerFromDir(join(dir, 'tiny'), { maxLen: 10 });
    expect(short.maxLen).toBe(10);
    expect(short.encode(long.text)).toEqual([...ids.slice(0, 9), hf.eotId]);
    expect(short.encode('')).toEqual([hf.sotId, hf.eotId]);
    const two = await clipTokenizerFromDir(join(dir, 'tiny'), { maxLen: 2 });
    expect(two.encode('a photo of a cat')).toEqual([hf.sotId, hf.eotId]);
  });

  it('encodeBatch right-pads with 0 after EOT', () => {
    const texts = ['a photo of a cat', '', fixture.cases.find((c) => c.untruncated > 100)!.text];
    const batch = hf.encodeBatch(texts);
    expect(batch).toBeInstanceOf(Int32Array);
    expect(batch.length).toBe(3 * 77);
    texts.forEach((t, i) => {
      const row = Array.from(batch.subarray(i * 77, (i + 1) * 77));
      const ids = hf.encode(t);
      expect(row.slice(0, ids.length)).toEqual(ids);
      expect(row.slice(ids.length).every((x) => x === 0)).toBe(true);
      // the pooled position (first EOT = argmax, EOT being the largest id) is the last real token
      expect(row.indexOf(hf.eotId)).toBe(ids.length - 1);
      expect(row.indexOf(Math.max(...row))).toBe(ids.length - 1);
    });
  });

  it('takes the context length and specials from tokenizer_config.json / special_tokens_map.json', async () => {
    const base = exportClipTokenizerFiles(hf);
    const withCfg = (cfg: object): Map<string, Uint8Array> => files({ ...base, 'tokenizer_config.json': JSON.stringify(cfg) });
    expect((await clipTokenizerFromFiles(withCfg({ model_max_length: 16 }))).maxLen).toBe(16);
    expect((await clipTokenizerFromFiles(withCfg({ model_max_length: 16 }), { maxLen: 12 })).maxLen).toBe(12);
    // HF's "no limit" (int(1e30)) is not a context length
    expect((await clipTokenizerFromFiles(withCfg({ model_max_length: 1e30 }))).maxLen).toBe(77);
    // AddedToken objects are accepted for bos / eos
    const t = await clipTokenizerFromFiles(withCfg({ bos_token: { content: '<|startoftext|>', normalized: true }, eos_token: '<|endoftext|>' }));
    expect([t.sotId, t.eotId]).toEqual([hf.sotId, hf.eotId]);
    await expect(clipTokenizerFromFiles(withCfg({ eos_token: '<|nope|>' }))).rejects.toThrow(/<\|nope\|>/);
    const { 'tokenizer_config.json': _cfg, ...noCfg } = base;
    await expect(clipTokenizerFromFiles(files({ ...noCfg, 'special_tokens_map.json': '{"eos_token": "<|nope|>"}' }))).rejects.toThrow(
      /tokenizer\.json: post_processor adds \["<\|startoftext\|>","<\|endoftext\|>"\] but the tokenizer config names/,
    );
  });

  it('decodes ids back to text (specials and padding dropped)', () => {
    const ids = hf.encode("A Café, naïve DOGS! 1234 it's");
    expect(hf.decode(ids)).toBe("a café , naïve dogs ! 1 2 3 4 it 's");
    const row = hf.encodeBatch(["A Café, naïve DOGS! 1234 it's"]);
    expect(hf.decode(row)).toBe(hf.decode(ids));
    expect(hf.decode(hf.encode('日本語 🐶'))).toBe('日本語 🐶');
    expect(hf.tokens(hf.encode('a cat'))).toEqual(['<|startoftext|>', 'a</w>', 'cat</w>', '<|endoftext|>']);
    expect(() => hf.decode([hf.vocabSize])).toThrow(RangeError);
    expect(() => hf.decode([-1])).toThrow(RangeError);
  });

  it('encodes lone surrogates as U+FFFD and non-strings as an error', () => {
    expect(hf.encode('a\uD800b')).toEqual(hf.encode('a\uFFFDb'));
    expect(() => hf.encode(3 as unknown as string)).toThrow(TypeError);
  });

  it('property: chunked encoding of long texts equals encoding them whole', () => {
    const whole = (t: string): number[] => (hf as unknown as { chunkIds(s: string): number[] }).chunkIds(t);
    const unit = fc.constantFrom(
      'a', 'photo', 'Cat', 'ΟΔΟΣ', 'É', 'e\u0301', '\u0301', ' ', '  ', '\t', '\n', '\u00a0', '\u0085', '\u3000', '\u2028',
      '\ufeff', '<|endoftext|>', '<|startoftext|>', "'s", "'ll", '1', '23', '🐶', '日本', '!?', '-', '\u001f', 'x'.repeat(40),
    );
    fc.assert(
      fc.property(fc.array(unit, { minLength: 100, maxLength: 600 }), (parts) => {
        const t = parts.join('');
        fc.pre(t.length > 600);
        expect(hf.contentIds(t)).toEqual(whole(t));
        const all = whole(t);
        const ids = hf.encode(t);
        expect(ids).toEqual([hf.sotId, ...all.slice(0, 75), hf.eotId]);
      }),
      { numRuns: 60, seed: 5 },
    );
  });

  it('keeps object-prototype names as ordinary tokens through JSON, export and import', async () => {
    const json = hf.toJSON();
    const vocab = [...json.vocab, '__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const t = clipTokenizerFromJSON({ ...json, vocab, vocabSize: vocab.length });
    expectReferenceIds(t);
    const back = await clipTokenizerFromFiles(files(exportClipTokenizerFiles(t)));
    expect(back.vocabulary.slice(-4)).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    expect(back.toJSON()).toEqual(t.toJSON());
  });
});

describe("Manyfold's JSON form", () => {
  it('round-trips through tokenizerFromJSON, dispatching on format', () => {
    const json = JSON.parse(JSON.stringify(hf.toJSON()));
    expect(json.format).toBe(CLIP_TOKENIZER_FORMAT);
    expect(json.normalization).toMatch(/NFC/);
    const back = tokenizerFromJSON(json);
    expect(back).toBeInstanceOf(ClipBpeTokenizer);
    expect(back.vocabSize).toBe(hf.vocabSize);
    expect(back.maxLen).toBe(77);
    for (const c of fixture.cases) expect(back.encode(c.text)).toEqual(c.ids);
  });

  it('rejects a malformed JSON form with the offending field', () => {
    const json = hf.toJSON();
    const bad = (patch: object): (() => unknown) => () => tokenizerFromJSON({ ...json, ...patch });
    expect(bad({ normalization: 'NFKC' })).toThrow(/normalization/);
    expect(bad({ vocabSize: 3 })).toThrow(/vocabSize/);
    expect(bad({ specials: { sot: 5, eot: json.specials.eot, pad: 0 } })).toThrow(/specials\.sot: id 5 is not an added token/);
    expect(bad({ merges: [...json.merges, 'nospace'] })).toThrow(/merges\.\d+/);
    expect(bad({ merges: [...json.merges, 'a zzz'] })).toThrow(/merges\[226\].*"zzz" is not in the vocabulary/);
    expect(bad({ merges: [...json.merges, json.merges[0]] })).toThrow(/appears twice/);
    expect(bad({ vocab: [...json.vocab.slice(0, -1), 'a'] })).toThrow(/"a" appears twice/);
    expect(bad({ vocab: ['<|unused|>', ...json.vocab.slice(1)] })).toThrow(/vocab: byte-level token "!" is missing/);
    expect(bad({ maxLen: 1 })).toThrow(/maxLen/);
    expect(bad({ extra: 1 })).toThrow(/invalid CLIP tokenizer JSON/);
    expect(() => clipTokenizerFromJSON(null)).toThrow(ClipTokenizerError);
  });
});

describe('malformed checkpoint files get errors naming the file and key', () => {
  const tiny = tinyBpeFileContents();
  const load = (entries: Record<string, string | Uint8Array>): Promise<ClipBpeTokenizer> => clipTokenizerFromFiles(files(entries));
  const tj = (): Record<string, unknown> & { model: Record<string, unknown> } => JSON.parse(tiny['tokenizer.json']);

  it('tokenizer.json', async () => {
    await expect(load({ 'tokenizer.json': '{"model": ' })).rejects.toThrow(/^tokenizer\.json: not valid JSON/);
    await expect(load({ 'tokenizer.json': new Uint8Array([0xff, 0xfe]) })).rejects.toThrow(/tokenizer\.json: not valid UTF-8/);
    await expect(load({ 'tokenizer.json': '{}' })).rejects.toThrow(/tokenizer\.json: model: missing/);
    const old = tj();
    old.normalizer = null;
    await expect(load({ 'tokenizer.json': JSON.stringify(old) })).rejects.toThrow(/tokenizer\.json: normalizer: expected CLIP's Sequence.*transformers < 4\.17/);
    const gpt2 = tj();
    gpt2.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false };
    await expect(load({ 'tokenizer.json': JSON.stringify(gpt2) })).rejects.toThrow(/tokenizer\.json: pre_tokenizer/);
    const suffix = tj();
    suffix.model.end_of_word_suffix = '';
    await expect(load({ 'tokenizer.json': JSON.stringify(suffix) })).rejects.toThrow(/tokenizer\.json: model\.end_of_word_suffix: expected "<\/w>"/);
    const merges = tj();
    (merges.model.merges as unknown[])[3] = 'a b c';
    await expect(load({ 'tokenizer.json': JSON.stringify(merges) })).rejects.toThrow(/tokenizer\.json: model\.merges\[3\]: a merge is two tokens/);
    const unknownPart = tj();
    (unknownPart.model.merges as unknown[])[5] = ['q', 'zz'];
    await expect(load({ 'tokenizer.json': JSON.stringify(unknownPart) })).rejects.toThrow(/tokenizer\.json: model\.merges\[5\]: merge "q zz": "zz" is not in the vocabulary/);
    const dupId = tj();
    (dupId.model.vocab as Record<string, number>)['!'] = 1;
    await expect(load({ 'tokenizer.json': JSON.stringify(dupId) })).rejects.toThrow(/tokenizer\.json: id 1 is used by both/);
    const badId = tj();
    (badId.model.vocab as Record<string, number>)['!'] = -4;
    await expect(load({ 'tokenizer.json': JSON.stringify(badId) })).rejects.toThrow(/tokenizer\.json: token "!" has id -4/);
    const addedBad = tj();
    (addedBad.added_tokens as Array<{ id: number }>)[0].id = 3;
    await expect(load({ 'tokenizer.json': JSON.stringify(addedBad) })).rejects.toThrow(/tokenizer\.json: added_tokens\[0\]: added token "<\|startoftext\|>" has id 3/);
    const addedShape = tj();
    (addedShape.added_tokens as unknown[])[1] = { id: 'x' };
    await expect(load({ 'tokenizer.json': JSON.stringify(addedShape) })).rejects.toThrow(/tokenizer\.json: added_tokens\.1\.id/);
    const noPost = tj();
    noPost.post_processor = null;
    await expect(load({ 'tokenizer.json': JSON.stringify(noPost) })).rejects.toThrow(/tokenizer\.json: post_processor: none/);
  });

  it('vocab.json + merges.txt', async () => {
    const v = tiny['vocab.json'];
    const m = tiny['merges.txt'];
    await expect(load({ 'vocab.json': v })).rejects.toThrow(/^merges\.txt: missing/);
    await expect(load({ 'merges.txt': m })).rejects.toThrow(/^vocab\.json: missing/);
    await expect(load({ 'vocab.json': '[1, 2]', 'merges.txt': m })).rejects.toThrow(/vocab\.json: \(root\) must be an object/);
    await expect(load({ 'vocab.json': v, 'merges.txt': m.split('\n').slice(1).join('\n') })).rejects.toThrow(/merges\.txt: line 1: expected the "#version: 0\.2" header/);
    const lines = m.split('\n');
    const withBad = [...lines.slice(0, 4), 'x y z', ...lines.slice(4)].join('\n');
    await expect(load({ 'vocab.json': v, 'merges.txt': withBad })).rejects.toThrow(/merges\.txt: line 5: a merge is two tokens/);
    const withBlank = [...lines.slice(0, 4), '', ...lines.slice(4)].join('\n');
    await expect(load({ 'vocab.json': v, 'merges.txt': withBlank })).rejects.toThrow(/merges\.txt: line 5: blank line between merges/);
    const withUnknown = [...lines.slice(0, 6), 'zz q', ...lines.slice(6)].join('\n');
    await expect(load({ 'vocab.json': v, 'merges.txt': withUnknown })).rejects.toThrow(/merges\.txt: line 7: merge "zz q": "zz" is not in the vocabulary/);
    const noByte = JSON.parse(v) as Record<string, number>;
    const ids = Object.entries(noByte).sort((a, b) => a[1] - b[1]);
    const shifted = Object.fromEntries(ids.filter(([k]) => k !== '!</w>').map(([k], i) => [k, i]));
    await expect(load({ 'vocab.json': JSON.stringify(shifted), 'merges.txt': m })).rejects.toThrow(/vocab\.json: byte-level token "!<\/w>" is missing/);
    const gap = { ...noByte, '!': ids.length + 5 };
    await expect(load({ 'vocab.json': JSON.stringify(gap), 'merges.txt': m })).rejects.toThrow(/vocab\.json: token "!" has id \d+; ids must be the integers 0\.\.\d+/);
    const noEot = Object.fromEntries(ids.filter(([k]) => k !== '<|endoftext|>'));
    await expect(load({ 'vocab.json': JSON.stringify(noEot), 'merges.txt': m })).rejects.toThrow(/vocab\.json: special token "<\|endoftext\|>" is not in the vocabulary/);
  });

  it("open_clip's vocabulary, the side configs and an empty directory", async () => {
    await expect(load({ 'bpe_simple_vocab_16e6.txt.gz': enc.encode('not gzip at all') })).rejects.toThrow(/bpe_simple_vocab_16e6\.txt\.gz: not a valid gzip file/);
    const bomb = gzipSync(Buffer.alloc(33 * 1024 * 1024, 0x61));
    expect(bomb.length).toBeLessThan(100_000);
    await expect(load({ 'bpe_simple_vocab_16e6.txt.gz': bomb })).rejects.toThrow(/bpe_simple_vocab_16e6\.txt\.gz: inflates past/);
    const oc = tiny['bpe_simple_vocab_16e6.txt'].split('\n');
    const dup = [...oc.slice(0, 3), oc[1], ...oc.slice(3)].join('\n');
    await expect(load({ 'bpe_simple_vocab_16e6.txt': dup })).rejects.toThrow(/bpe_simple_vocab_16e6\.txt: .*appears twice/);
    await expect(load({ ...tiny, 'tokenizer_config.json': '{"model_max_length": "77"}' })).rejects.toThrow(/tokenizer_config\.json: model_max_length:/);
    await expect(load({ ...tiny, 'special_tokens_map.json': '{' })).rejects.toThrow(/special_tokens_map\.json: not valid JSON/);
    const emptyDir = join(dir, 'empty');
    await mkdir(emptyDir, { recursive: true });
    await expect(clipTokenizerFromDir(emptyDir)).rejects.toThrow(/empty: no CLIP tokenizer files: expected tokenizer\.json, or vocab\.json \+ merges\.txt/);
  });
});
