import { readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32 } from '../../src/data/crc32.js';
import { decodeImage, ImageTensorCache, sha256, specKey } from '../../src/data/imageCache.js';
import { defaultCacheDir, loadDataset, type LoadOptions } from '../../src/data/load.js';
import { mapPool } from '../../src/data/pool.js';
import { fixtureCopy } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await fixtureCopy());
});
afterEach(async () => cleanup());

const file = () => join(dir, 'karpathy_small.json');

async function load(opts: Partial<LoadOptions> = {}) {
  const decoded: string[] = [];
  const s = await loadDataset(file(), { size: 8, onDecode: (p) => decoded.push(p), ...opts });
  return { s, decoded };
}

async function cacheEntries(cacheDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await readdir(cacheDir, { withFileTypes: true })) {
    if (!shard.isDirectory()) continue;
    for (const f of await readdir(join(cacheDir, shard.name))) out.push(join(cacheDir, shard.name, f));
  }
  return out.sort();
}

describe('tensor cache', () => {
  it('defaults to .cache/manyfold/images next to the dataset file', async () => {
    const { s } = await load();
    expect(s.load?.cacheDir).toBe(join(dir, '.cache', 'manyfold', 'images'));
    expect(defaultCacheDir(file())).toBe(s.load?.cacheDir);
    expect((await cacheEntries(s.load!.cacheDir!)).length).toBe(4);
  });

  it('second load decodes nothing and returns identical pixels', async () => {
    const first = await load();
    expect(first.decoded).toHaveLength(4);
    expect(first.s.load).toMatchObject({ decoded: 4, cacheHits: 0, hashed: 4 });
    const second = await load();
    expect(second.decoded).toHaveLength(0);
    expect(second.s.load).toMatchObject({ decoded: 0, cacheHits: 4, hashed: 0 }); // stat index: no source re-read
    expect(Buffer.from(second.s.images).equals(Buffer.from(first.s.images))).toBe(true);
    // a different size or resize mode is a different key
    const other = await load({ size: 6 });
    expect(other.decoded).toHaveLength(4);
    const fill = await load({ resize: 'fill' });
    expect(fill.decoded).toHaveLength(4);
  });

  it('keys by content: a renamed copy is a cache hit; a changed file is a miss', async () => {
    await load();
    const manifest = join(dir, 'renamed.jsonl');
    await writeFile(join(dir, 'images', 'copy-of-gray.png'), await readFile(join(dir, 'images', 'gray.png')));
    await writeFile(manifest, '{"image": "images/copy-of-gray.png", "captions": ["x"]}\n');
    const decoded: string[] = [];
    const s = await loadDataset(manifest, { size: 8, cacheDir: join(dir, '.cache', 'manyfold', 'images'), onDecode: (p) => decoded.push(p) });
    expect(decoded).toEqual([]);
    expect(s.load).toMatchObject({ cacheHits: 1, hashed: 1 });

    // overwrite gray.png with other content (and a new mtime): must decode again
    await writeFile(join(dir, 'images', 'gray.png'), await readFile(join(dir, 'images', 'alpha.png')));
    const later = new Date(Date.now() + 5000);
    await utimes(join(dir, 'images', 'gray.png'), later, later);
    const again = await load({ split: 'test' });
    // the stat index notices the change and re-hashes; the new content (alpha.png's) is already cached
    expect(again.s.load?.hashed).toBe(1);
    expect(again.decoded).toEqual([]);
    expect(again.s.images[0]).toBe(255); // transparent -> flattened onto white
    // genuinely new content is decoded
    const fresh = await sharp(Buffer.alloc(5 * 5 * 3, 77), { raw: { width: 5, height: 5, channels: 3 } }).png().toBuffer();
    await writeFile(join(dir, 'images', 'gray.png'), fresh);
    const later2 = new Date(Date.now() + 10000);
    await utimes(join(dir, 'images', 'gray.png'), later2, later2);
    const third = await load({ split: 'test' });
    expect(third.decoded.map((p) => p.endsWith('gray.png'))).toEqual([true]);
    expect(third.s.images[0]).toBe(77);
  });

  it('recovers from truncated, bit-flipped and garbage cache entries', async () => {
    const { s } = await load();
    const entries = await cacheEntries(s.load!.cacheDir!);
    await truncate(entries[0], 10);
    const buf = await readFile(entries[1]);
    buf[buf.length - 1] ^= 0xff;
    await writeFile(entries[1], buf);
    await writeFile(entries[2], 'not a cache entry');
    const warnings: string[] = [];
    const again = await load({ onWarning: (w) => warnings.push(w) });
    expect(again.decoded).toHaveLength(3);
    expect(again.s.load).toMatchObject({ corruptEntries: 3, cacheHits: 1, decoded: 3 });
    expect(warnings.join('\n')).toMatch(/corrupt cache entry .*checksum mismatch/);
    expect(Buffer.from(again.s.images).equals(Buffer.from(s.images))).toBe(true);
    // entries were rewritten: third load is all hits
    const third = await load();
    expect(third.decoded).toHaveLength(0);
  });

  it('survives a corrupt stat index and a missing one', async () => {
    const { s } = await load();
    const index = join(s.load!.cacheDir!, 'stat-index-v1.json');
    await writeFile(index, '{"version": 1, "entries": {broken');
    const a = await load();
    expect(a.decoded).toHaveLength(0);
    expect(a.s.load?.hashed).toBe(4);
    await rm(index);
    const b = await load();
    expect(b.decoded).toHaveLength(0);
    expect(JSON.parse(await readFile(index, 'utf8')).version).toBe(1);
  });

  it('concurrent loads into one cache directory agree and leave no temp files', async () => {
    const results = await Promise.all([load(), load(), load({ concurrency: 1 })]);
    for (const r of results) expect(Buffer.from(r.s.images).equals(Buffer.from(results[0].s.images))).toBe(true);
    const cacheDir = results[0].s.load!.cacheDir!;
    const entries = await cacheEntries(cacheDir);
    expect(entries.filter((e) => e.endsWith('.tmp'))).toEqual([]);
    expect(entries).toHaveLength(4);
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('keeps working when the cache directory cannot be written', async () => {
    const blocker = join(dir, 'not-a-dir');
    await writeFile(blocker, 'x');
    const warnings: string[] = [];
    const { s, decoded } = await load({ cacheDir: join(blocker, 'cache'), onWarning: (w) => warnings.push(w) });
    expect(s.count).toBe(4);
    expect(decoded).toHaveLength(4);
    expect(warnings.some((w) => /tensor cache disabled/.test(w))).toBe(true);
  });

  it('cacheDir false never writes', async () => {
    const a = await load({ cacheDir: false });
    const b = await load({ cacheDir: false });
    expect(a.decoded).toHaveLength(4);
    expect(b.decoded).toHaveLength(4);
    await expect(stat(join(dir, '.cache'))).rejects.toThrow();
  });

  it('reports progress for every image', async () => {
    const seen: number[] = [];
    const { s } = await load({ onProgress: (p) => seen.push(p.done) });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(s.count).toBe(4);
  });

  it('entry format: header + pixels + CRC, written atomically', async () => {
    const cache = new ImageTensorCache(join(dir, 'c'));
    const spec = { size: 2, resize: 'cover' as const, background: [0, 0, 0] as const };
    const pixels = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(await cache.get('ab'.repeat(32), spec)).toEqual({ status: 'missing' });
    await cache.put('ab'.repeat(32), spec, pixels);
    const path = cache.entryPath('ab'.repeat(32), spec);
    expect(path).toContain(`${'ab'.repeat(32)}.${specKey(spec)}.rgb`);
    expect(specKey(spec)).toBe('2.cover.000000');
    const got = await cache.get('ab'.repeat(32), spec);
    expect(got.status).toBe('hit');
    if (got.status === 'hit') expect(Array.from(got.pixels)).toEqual(Array.from(pixels));
    const raw = await readFile(path);
    expect(raw.length).toBe(20 + 12);
    expect(raw.readUInt32LE(16)).toBe(crc32(pixels));
  });
});

describe('decoding', () => {
  const spec = (size: number, resize: 'cover' | 'fill' = 'cover', background: readonly [number, number, number] = [255, 255, 255]) => ({
    size,
    resize,
    background,
  });

  it('cover centre-crops, fill stretches', async () => {
    const bytes = await readFile(join(dir, 'images', 'redblue.png')); // 16x8: red | blue
    const cover = await decodeImage(bytes, spec(4, 'cover'));
    const fill = await decodeImage(bytes, spec(4, 'fill'));
    const at = (img: Uint8Array, x: number, y: number) => Array.from(img.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3));
    // fill: left column red, right column blue
    expect(at(fill, 0, 0)[0]).toBeGreaterThan(200);
    expect(at(fill, 3, 0)[2]).toBeGreaterThan(200);
    // cover: the middle 8x8 of 16x8 -> left half still red, right half blue, but the outer quarters are gone
    expect(at(cover, 0, 2)[0]).toBeGreaterThan(200);
    expect(at(cover, 3, 2)[2]).toBeGreaterThan(200);
    expect(cover.length).toBe(48);
  });

  it('flattens alpha onto the background and expands greyscale to RGB', async () => {
    const alpha = await readFile(join(dir, 'images', 'alpha.png'));
    expect(Array.from((await decodeImage(alpha, spec(2, 'cover', [10, 20, 30]))).subarray(0, 3))).toEqual([10, 20, 30]);
    const gray = await decodeImage(await readFile(join(dir, 'images', 'gray.png')), spec(3));
    expect(gray.length).toBe(27);
    expect(Array.from(gray.subarray(0, 3))).toEqual([100, 100, 100]);
  });

  it('rejects bytes that are not an image', async () => {
    await expect(decodeImage(new TextEncoder().encode('hello'), spec(4))).rejects.toThrow();
  });

  it('background option changes the cache key and the pixels', async () => {
    const a = await loadDataset(file(), { size: 2, split: 'val', cacheDir: join(dir, 'c2') });
    const b = await loadDataset(file(), { size: 2, split: 'val', cacheDir: join(dir, 'c2'), background: '#000000' });
    expect(a.images[0]).toBe(255);
    expect(b.images[0]).toBe(0);
    expect(b.load?.decoded).toBe(1);
    expect(sha256(new Uint8Array([1])).length).toBe(64);
  });
});

describe('mapPool', () => {
  it('bounds concurrency and keeps order', async () => {
    let active = 0;
    let peak = 0;
    const out = await mapPool([5, 1, 4, 2, 3], 2, async (v) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, v));
      active--;
      return v * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  it('rethrows the first error', async () => {
    await expect(mapPool([1, 2, 3], 2, async (v) => {
      if (v === 2) throw new Error('boom');
      return v;
    })).rejects.toThrow('boom');
  });
});

describe('Semaphore', () => {
  it('never runs more than its limit', async () => {
    const { Semaphore } = await import('../../src/data/pool.js');
    const sem = new Semaphore(2);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        sem.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 2 + (i % 3)));
          active--;
        }),
      ),
    );
    expect(peak).toBe(2);
  });
});
