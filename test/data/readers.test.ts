import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatasetError } from '../../src/data/errors.js';
import { loadDataset } from '../../src/data/load.js';
import { detectFormat, parseJsonl, parseKarpathy, readDatasetFile } from '../../src/data/readers.js';
import { fixtureCopy } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await fixtureCopy());
});
afterEach(async () => cleanup());

const karpathy = () => join(dir, 'karpathy_small.json');
const manifest = () => join(dir, 'manifest_small.jsonl');

async function writeJsonl(name: string, lines: string[]): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, lines.join('\n') + '\n');
  return f;
}

async function writeKarpathy(name: string, images: unknown[]): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, JSON.stringify({ images }, null, 2));
  return f;
}

const good = (image: string, split = 'test') => JSON.stringify({ image, captions: ['a caption'], split });

/** runs loadDataset in fail mode and returns the DatasetError */
async function failure(file: string, opts: Partial<Parameters<typeof loadDataset>[1]> = {}): Promise<DatasetError> {
  try {
    await loadDataset(file, { size: 8, cacheDir: false, ...opts });
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    return err as DatasetError;
  }
  throw new Error('expected loadDataset to fail');
}

describe('Karpathy JSON reader', () => {
  it('loads one split with images resolved through filepath, captions normalised, scenes kept', async () => {
    const test = await loadDataset(karpathy(), { split: 'test', size: 8, cacheDir: false });
    expect(test.name).toBe('test');
    expect(test.count).toBe(2);
    expect(test.imageIds).toEqual(['images/gray.png', 'sub/green.jpg']);
    expect(test.captions).toEqual(['a grey square', 'plain gray', 'a green picture']);
    expect(Array.from(test.captionToImage)).toEqual([0, 0, 1]);
    expect(test.imageToCaptions).toEqual([[0, 1], [2]]);
    expect(test.images.length).toBe(2 * 8 * 8 * 3);
    expect(test.scenes?.[0]?.objects[0].shape).toBe('square');
    expect(test.scenes?.[1]).toBeUndefined();
    expect(test.skipped).toEqual([]);
    expect(test.load?.format).toBe('karpathy');

    const train = await loadDataset(karpathy(), { split: 'train', size: 8, cacheDir: false });
    expect(train.captions).toEqual(['A red half and a blue half.', 'two colours']);
    expect(train.scenes).toBeUndefined();
  });

  it('loads several splits at once and everything without a split filter', async () => {
    const tv = await loadDataset(karpathy(), { split: ['train', 'val'], size: 4, cacheDir: false });
    expect(tv.name).toBe('train+val');
    expect(tv.count).toBe(2);
    const all = await loadDataset(karpathy(), { size: 4, cacheDir: false });
    expect(all.name).toBe('all');
    expect(all.count).toBe(4);
  });

  it('resolves images against imagesDir, falling back to imagesDir/filename', async () => {
    const other = join(dir, 'elsewhere');
    await mkdir(other);
    const f = await writeKarpathy('moved.json', [
      { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'x' }] },
      { filename: 'green.jpg', filepath: 'nonexistent', split: 'test', sentences: [{ raw: 'y' }] },
    ]);
    // images/ lives in dir, not next to "elsewhere": imagesDir points to dir
    const s = await loadDataset(join(dir, 'moved.json'), { size: 4, cacheDir: false, imagesDir: dir, onBadRow: 'skip' });
    expect(s.count).toBe(1);
    expect(s.skipped[0].reason).toMatch(/image not found: .*nonexistent.*green\.jpg \(or .*green\.jpg\)/);
    expect(f).toContain('moved.json');
    // fallback: filepath dir missing but the file sits directly in imagesDir
    const s2 = await loadDataset(join(dir, 'moved.json'), { size: 4, cacheDir: false, imagesDir: join(dir, 'sub'), onBadRow: 'skip' });
    expect(s2.imageIds).toEqual(['nonexistent/green.jpg']);
  });

  it('applies limit after the split filter, in file order', async () => {
    const s = await loadDataset(karpathy(), { split: 'test', size: 4, cacheDir: false, limit: 1 });
    expect(s.imageIds).toEqual(['images/gray.png']);
  });

  it('rejects a file that is not valid JSON with line and column', async () => {
    const f = join(dir, 'broken.json');
    await writeFile(f, '{\n  "images": [\n    {"filename": "a.png",, }\n  ]\n}\n');
    const err = await failure(f);
    expect(err.where).toBe(f);
    expect(err.message).toMatch(/malformed JSON at line 3, column \d+/);
  });

  it('rejects a JSON without an images array', async () => {
    const f = join(dir, 'noimages.json');
    await writeFile(f, '{"annotations": []}');
    const err = await failure(f);
    expect(err.message).toContain(f);
    expect(err.message).toMatch(/not a Karpathy-split JSON.*images/);
  });

  const cases: [string, unknown, RegExp][] = [
    ['missing sentences', { filename: 'x.png', split: 'test' }, /sentences: is missing \(expected array\)/],
    ['wrong type', { filename: 'x.png', split: 'test', sentences: [{ raw: 3 }] }, /sentences\[0\]\.raw: expected string, received number/],
    ['empty caption', { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'ok' }, { raw: '   ' }] }, /sentences\[1\]\.raw is empty/],
    ['no captions', { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [] }, /has no captions/],
    ['bad scene', { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'a' }], scene: { background: 'x', objects: [], relations: [{ subject: 0, relation: 'left of', object: 1 }] } }, /scene\.relations\[0\]\.subject: refers to object 0 but the scene has 0 objects/],
    ['missing image', { filename: 'nope.png', filepath: 'images', split: 'test', sentences: [{ raw: 'a' }] }, /image not found: .*images\/nope\.png/],
  ];
  for (const [name, entry, message] of cases) {
    it(`names the file and entry for: ${name}`, async () => {
      const f = await writeKarpathy(`${name.replace(/ /g, '_')}.json`, [
        { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'fine' }] },
        entry,
      ]);
      const err = await failure(f, { split: 'test' });
      expect(err.where).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} images\\[1\\]`));
      expect(err.message).toMatch(message);
      // skip mode: the good row survives, the bad one is recorded with the same location
      const s = await loadDataset(f, { split: 'test', size: 4, cacheDir: false, onBadRow: 'skip' });
      expect(s.count).toBe(1);
      expect(s.skipped).toHaveLength(1);
      expect(s.skipped[0].where).toBe(err.where);
      expect(s.skipped[0].reason).toMatch(message);
    });
  }

  it('does not validate rows of splits that were not requested', async () => {
    const f = await writeKarpathy('other_split_bad.json', [
      { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'fine' }] },
      { filename: 'x.png', split: 'train', sentences: 'not a list' },
    ]);
    const s = await loadDataset(f, { split: 'test', size: 4, cacheDir: false });
    expect(s.count).toBe(1);
    await expect(loadDataset(f, { split: 'train', size: 4, cacheDir: false })).rejects.toThrow(/images\[1\] \("x\.png"\): sentences: expected array/);
  });

  it('flags duplicate images', async () => {
    const f = await writeKarpathy('dup.json', [
      { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'a' }] },
      { filename: 'gray.png', filepath: 'images', split: 'test', sentences: [{ raw: 'b' }] },
    ]);
    const err = await failure(f);
    expect(err.message).toMatch(/images\[1\].*duplicate image "images\/gray\.png" \(first listed at images\[0\]\)/);
  });
});

describe('JSONL manifest reader', () => {
  it('loads rows relative to the manifest, skipping blank lines', async () => {
    const s = await loadDataset(manifest(), { split: 'test', size: 8, cacheDir: false });
    expect(s.imageIds).toEqual(['images/gray.png', 'sub/green.jpg']);
    expect(s.captions).toEqual(['grey', 'green']);
    expect(s.load?.format).toBe('jsonl');
  });

  const cases: [string, string, RegExp][] = [
    ['malformed JSON line', '{"image": "images/gray.png", "captions": ["a"]', /malformed JSON line/],
    ['wrong types', '{"image": "images/gray.png", "captions": "a caption", "split": "test"}', /captions: expected array, received string/],
    ['missing image field', '{"captions": ["a"], "split": "test"}', /image: is missing \(expected string\)/],
    ['empty caption', '{"image": "images/alpha.png", "captions": ["ok", ""], "split": "test"}', /captions\[1\] is empty/],
    ['missing image file', '{"image": "images/missing.png", "captions": ["a"], "split": "test"}', /image not found: .*images\/missing\.png/],
    ['undecodable image', '{"image": "karpathy_small.json", "captions": ["a"], "split": "test"}', /cannot decode image .*karpathy_small\.json: /],
    ['missing split when one is requested', '{"image": "images/alpha.png", "captions": ["a"]}', /has no "split" but split "test" was requested/],
    ['duplicate image', good('images/gray.png'), /duplicate image "images\/gray\.png" \(first listed at line 1\)/],
  ];
  for (const [name, line, message] of cases) {
    it(`names the file and line for: ${name}`, async () => {
      const f = await writeJsonl(`${name.replace(/ /g, '_')}.jsonl`, [good('images/gray.png'), '', line, good('sub/green.jpg')]);
      const err = await failure(f, { split: 'test' });
      expect(err.where).toBe(`${f}:3`);
      expect(err.message.startsWith(`${f}:3: `)).toBe(true);
      expect(err.message).toMatch(message);
      const s = await loadDataset(f, { split: 'test', size: 4, cacheDir: false, onBadRow: 'skip' });
      expect(s.imageIds).toEqual(['images/gray.png', 'sub/green.jpg']);
      expect(s.skipped).toEqual([{ where: `${f}:3`, reason: expect.stringMatching(message) }]);
    });
  }

  it('counts and records every bad row in skip mode', async () => {
    const f = await writeJsonl('many_bad.jsonl', [
      'not json',
      good('images/gray.png'),
      '{"image": 5, "captions": [], "split": "test"}',
      good('images/none1.png'),
      good('images/none2.png'),
      good('sub/green.jpg'),
    ]);
    const s = await loadDataset(f, { split: 'test', size: 4, cacheDir: false, onBadRow: 'skip' });
    expect(s.count).toBe(2);
    expect(s.skipped.map((b) => b.where)).toEqual([`${f}:1`, `${f}:3`, `${f}:4`, `${f}:5`]);
    expect(s.captions.length).toBe(2);
    expect(Array.from(s.captionToImage)).toEqual([0, 1]);
  });

  it('pixels of kept rows stay aligned with their ids after skipping', async () => {
    const f = await writeJsonl('align.jsonl', [good('images/missing.png'), good('sub/green.jpg'), good('images/gray.png')]);
    const s = await loadDataset(f, { split: 'test', size: 4, cacheDir: false, onBadRow: 'skip' });
    expect(s.imageIds).toEqual(['sub/green.jpg', 'images/gray.png']);
    const px = 4 * 4 * 3;
    const g = s.images.subarray(0, px);
    expect(g[1]).toBeGreaterThan(150); // green channel of the green image
    expect(g[0]).toBeLessThan(40);
    const gray = s.images.subarray(px, 2 * px);
    expect(Math.abs(gray[0] - 100)).toBeLessThan(3);
    expect(gray[0]).toBe(gray[1]);
    expect(s.images.length).toBe(2 * px);
  });
});

describe('format detection', () => {
  it('uses the extension, then the content', async () => {
    expect(detectFormat('a.jsonl', '')).toBe('jsonl');
    expect(detectFormat('a.ndjson', '')).toBe('jsonl');
    expect(detectFormat('a.json', '')).toBe('karpathy');
    expect(detectFormat('a.txt', '{"images": []}')).toBe('karpathy');
    expect(detectFormat('a.txt', '{"image": "x", "captions": ["a"]}\n{"image": "y", "captions": ["b"]}')).toBe('jsonl');
    const f = join(dir, 'data.txt');
    await writeFile(f, good('images/gray.png') + '\n');
    const r = await readDatasetFile(f);
    expect(r.format).toBe('jsonl');
    expect(r.records).toHaveLength(1);
  });

  it('reports a missing dataset file clearly', async () => {
    await expect(readDatasetFile(join(dir, 'nope.json'))).rejects.toThrow(/nope\.json: dataset file not found/);
  });

  it('parsers work on strings without touching images', () => {
    const k = parseKarpathy('/x/d.json', JSON.stringify({ images: [{ filename: 'a.png', split: 'val', sentences: [{ raw: 'hi' }] }] }));
    expect(k.records[0]).toMatchObject({ imageId: 'a.png', imagePaths: ['/x/a.png'], captions: ['hi'], split: 'val' });
    const j = parseJsonl('/x/m.jsonl', '{"image": "/abs/b.png", "captions": ["yo"]}\n');
    expect(j.records[0].imagePaths).toEqual(['/abs/b.png']);
  });
});
