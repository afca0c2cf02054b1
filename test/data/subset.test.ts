import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatasetError } from '../../src/data/errors.js';
import { readDatasetFile } from '../../src/data/readers.js';
import { subsetDataset } from '../../src/data/subset.js';
import { fixtureCopy } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await fixtureCopy());
});
afterEach(async () => cleanup());

describe('subsetDataset', () => {
  it('keeps the first N rows of a split in file order, the other splits whole, and its images resolve from another directory', async () => {
    const src = join(dir, 'karpathy_small.json');
    await mkdir(join(dir, 'elsewhere', 'deeper'), { recursive: true });
    const out = join(dir, 'elsewhere', 'deeper', 'small.json');
    const r = await subsetDataset(src, out, { keep: { test: 1, val: 0 } });
    expect(r.format).toBe('karpathy');
    expect(r.sourceCounts).toEqual({ train: 1, val: 1, test: 2 });
    expect(r.counts).toEqual({ train: 1, test: 1 });
    const before = await readDatasetFile(src);
    const after = await readDatasetFile(out);
    const firstTest = before.records.find((x) => x.split === 'test')!;
    expect(after.records.map((x) => [x.split, x.captions])).toEqual([
      ['train', before.records[0].captions],
      ['test', firstTest.captions],
    ]);
    // the rewritten paths name the same files
    expect(after.records[1].imagePaths[0]).toBe(firstTest.imagePaths[0]);
    expect(after.records[1].scene).toEqual(firstTest.scene);
    const doc = JSON.parse(await readFile(out, 'utf8')) as { dataset: string; subsetOf: { keep: Record<string, number> } };
    expect(doc.dataset).toBe('fixture');
    expect(doc.subsetOf.keep).toEqual({ test: 1, val: 0 });
  });

  it('writes the same entries when the subset lives next to its source', async () => {
    const src = join(dir, 'karpathy_small.json');
    await subsetDataset(src, join(dir, 'small.json'), { keep: { train: 1 } });
    const a = JSON.parse(await readFile(src, 'utf8')) as { images: unknown[] };
    const b = JSON.parse(await readFile(join(dir, 'small.json'), 'utf8')) as { images: unknown[] };
    expect(b.images).toEqual(a.images);
  });

  it('subsets a JSONL manifest and rebases its relative image paths', async () => {
    const src = join(dir, 'manifest_small.jsonl');
    await mkdir(join(dir, 'out'));
    const out = join(dir, 'out', 'm.jsonl');
    const r = await subsetDataset(src, out, { keep: { train: 0 } });
    const before = (await readDatasetFile(src)).records.filter((x) => x.split !== 'train');
    const after = (await readDatasetFile(out)).records;
    expect(r.counts.train).toBeUndefined();
    expect(after.map((x) => [x.imagePaths[0], x.captions])).toEqual(before.map((x) => [x.imagePaths[0], x.captions]));
  });

  it('refuses to overwrite its source, to invent rows, or to change the format, naming the file', async () => {
    const src = join(dir, 'karpathy_small.json');
    await expect(subsetDataset(src, src, { keep: { train: 1 } })).rejects.toThrow(/overwrite its source/);
    const err = await subsetDataset(src, join(dir, 'x.json'), { keep: { train: 5 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(String((err as Error).message)).toMatch(/karpathy_small\.json.*5 rows of split "train" but the file has 1/);
    await expect(subsetDataset(src, join(dir, 'x.jsonl'), { keep: { train: 1 } })).rejects.toThrow(/same extension/);
    await expect(subsetDataset(src, join(dir, 'no-such-dir', 'x.json'), { keep: { train: 1 } })).rejects.toThrow(/no-such-dir.*cannot write the subset/);
  });
});
