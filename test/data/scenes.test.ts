import { createRequire } from 'node:module';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDataCommands } from '../../src/cli/commands/data.js';
import { loadDataset } from '../../src/data/load.js';
import { captionsForScene, tokenize } from '../../src/data/scenes/captions.js';
import { generateScenes, type GenerateScenesResult } from '../../src/data/scenes/generate.js';
import { sceneKey, sceneMatches, spatialFacts } from '../../src/data/scenes/match.js';
import { insideShape, renderScene } from '../../src/data/scenes/raster.js';
import { COLOR_RGB, COLOR_WORDS, SHAPE_WORDS, SHAPES, SIZE_WORDS, type Color, type Shape } from '../../src/data/scenes/vocab.js';
import type { SceneGraph } from '../../src/data/types.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from './helpers.js';

interface KarpathyDoc {
  images: { filename: string; split: string; sentences: { raw: string; tokens: string[] }[]; scene: SceneGraph }[];
}

let tmp: string;
let cleanup: () => Promise<void>;
let big: GenerateScenesResult;
let bigDoc: KarpathyDoc;

beforeAll(async () => {
  ({ dir: tmp, cleanup } = await tempDir('manyfold-scenes-'));
  const t0 = performance.now();
  big = await generateScenes({ out: join(tmp, 'big'), train: 1000, val: 100, test: 500, seed: 7 });
  const ms = performance.now() - t0;
  console.log(`generated 1600 scenes at 64 px in ${(ms / 1000).toFixed(2)} s (${(ms / 1600).toFixed(2)} ms/image)`);
  bigDoc = JSON.parse(await readFile(big.file, 'utf8')) as KarpathyDoc;
});
afterAll(async () => cleanup());

const splitOf = (name: string) => bigDoc.images.filter((i) => i.split === name);

describe('scenes generator: files and determinism', () => {
  it('writes PNGs and a Karpathy JSON that the reader loads, scene graphs included', async () => {
    expect(big.counts).toEqual({ train: 1000, val: 100, test: 500 });
    expect((await readdir(big.imagesDir)).filter((f) => f.endsWith('.png'))).toHaveLength(1600);
    const test = await loadDataset(big.file, { split: 'test', size: 32, cacheDir: join(tmp, 'cache') });
    expect(test.count).toBe(500);
    expect(test.captions.length).toBe(2500);
    expect(test.scenes?.every((s) => s && s.objects.length >= 1 && s.objects.length <= 3)).toBe(true);
    expect(test.imageToCaptions.every((c) => c.length === 5)).toBe(true);
    const entry = bigDoc.images[0];
    expect(entry.sentences[0].tokens).toEqual(tokenize(entry.sentences[0].raw));
  });

  it('same seed -> byte-identical PNGs and JSON; another seed differs', async () => {
    const opts = { train: 12, val: 3, test: 5 };
    const a = await generateScenes({ out: join(tmp, 'det-a'), seed: 42, ...opts });
    const b = await generateScenes({ out: join(tmp, 'det-b'), seed: 42, ...opts });
    const c = await generateScenes({ out: join(tmp, 'det-c'), seed: 43, ...opts });
    expect((await readFile(a.file)).equals(await readFile(b.file))).toBe(true);
    expect((await readFile(a.file)).equals(await readFile(c.file))).toBe(false);
    const files = (await readdir(a.imagesDir)).sort();
    expect(files).toHaveLength(20);
    for (const f of files) {
      expect((await readFile(join(a.imagesDir, f))).equals(await readFile(join(b.imagesDir, f))), f).toBe(true);
    }
  });

  it('regenerating a directory while it is read never exposes a partial PNG (parallel experiment seeds)', async () => {
    const opts = { out: join(tmp, 'regen'), seed: 9, train: 150, val: 0, test: 50 };
    const first = await generateScenes(opts);
    const files = (await readdir(first.imagesDir)).sort();
    const bytes = new Map(await Promise.all(files.map(async (f) => [f, await readFile(join(first.imagesDir, f))] as const)));
    let finished = false;
    const second = generateScenes(opts).finally(() => (finished = true));
    let reads = 0;
    const mismatches: string[] = [];
    // whole passes over the directory in parallel, so reads overlap the second generator's writes
    while (!finished) {
      await Promise.all(
        files.map(async (f) => {
          const now = await readFile(join(first.imagesDir, f));
          reads++;
          if (!now.equals(bytes.get(f)!)) mismatches.push(`${f}: ${now.length} bytes, expected ${bytes.get(f)!.length}`);
        }),
      );
    }
    await second;
    expect(reads).toBeGreaterThanOrEqual(files.length);
    expect(mismatches).toEqual([]);
    expect((await readdir(first.imagesDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('the test split does not depend on the train count', async () => {
    const a = await generateScenes({ out: join(tmp, 'ind-a'), seed: 5, train: 3, val: 2, test: 6 });
    const b = await generateScenes({ out: join(tmp, 'ind-b'), seed: 5, train: 40, val: 2, test: 6 });
    const testOf = async (r: GenerateScenesResult) =>
      (JSON.parse(await readFile(r.file, 'utf8')) as KarpathyDoc).images.filter((i) => i.split === 'test').map((i) => ({ s: i.scene, c: i.sentences.map((x) => x.raw) }));
    expect(await testOf(a)).toEqual(await testOf(b));
    expect((await readFile(join(a.imagesDir, 'test_00003.png'))).equals(await readFile(join(b.imagesDir, 'test_00003.png')))).toBe(true);
  });

  it('validates its options', async () => {
    await expect(generateScenes({ out: join(tmp, 'bad'), train: -1 })).rejects.toThrow(/train must be an integer/);
    await expect(generateScenes({ out: join(tmp, 'bad'), size: 8 })).rejects.toThrow(/size must be an integer 16\.\.1024/);
  });
});

describe('scenes generator: content', () => {
  it('every image has 5 distinct captions naming each object by colour and shape', () => {
    const colorOf = new Map<string, string>();
    for (const [c, words] of Object.entries(COLOR_WORDS)) for (const w of words) colorOf.set(w, c);
    const shapeOf = new Map<string, string>();
    for (const [s, words] of Object.entries(SHAPE_WORDS)) for (const w of words) shapeOf.set(w, s);
    for (const img of bigDoc.images) {
      const raws = img.sentences.map((s) => s.raw);
      expect(new Set(raws).size).toBe(5);
      for (const raw of raws) {
        const toks = tokenize(raw);
        // "colour shape" bigrams in the caption, mapped back to canonical names
        const mentioned = new Set<string>();
        for (let i = 0; i + 1 < toks.length; i++) {
          if (colorOf.has(toks[i]) && shapeOf.has(toks[i + 1])) mentioned.add(`${colorOf.get(toks[i])} ${shapeOf.get(toks[i + 1])}`);
        }
        const expected = new Set(img.scene.objects.map((o) => `${o.color} ${o.shape}`));
        expect(mentioned, raw).toEqual(expected);
        if (img.scene.objects.length >= 2) {
          expect(raw, raw).toMatch(/\b(left|right|above|below|over|under|beneath|top|bottom)\b/);
        }
      }
    }
  });

  it('most content words are WordNet lemmas', async () => {
    const require = createRequire(import.meta.url);
    const WordPOS = require('wordpos') as new () => { lookup(word: string): Promise<unknown[]> };
    const wordpos = new WordPOS();
    const stop = new Set(['a', 'an', 'the', 'and', 'of', 'to', 'on', 'in', 'at', 'with', 'is', 'which', 'its', 'it', 'there', 'from', 'between', 'over', 'under']);
    const counts = new Map<string, number>();
    for (const img of bigDoc.images) for (const s of img.sentences) for (const t of s.tokens) if (!stop.has(t)) counts.set(t, (counts.get(t) ?? 0) + 1);
    const missing: string[] = [];
    let missingTokens = 0;
    let total = 0;
    for (const [word, n] of counts) {
      total += n;
      const found = (await wordpos.lookup(word)).length > 0 || (word.endsWith('s') && (await wordpos.lookup(word.slice(0, -1))).length > 0);
      if (!found) {
        missing.push(word);
        missingTokens += n;
      }
    }
    console.log(`content vocabulary: ${counts.size} words, not in WordNet: ${missing.join(', ') || 'none'}`);
    expect(missing.length / counts.size).toBeLessThan(0.05);
    expect(missingTokens / total).toBeLessThan(0.02);
    // every vocabulary word itself is a lemma
    for (const w of [...Object.values(COLOR_WORDS).flat(), ...Object.values(SHAPE_WORDS).flat(), ...Object.values(SIZE_WORDS).flat()]) {
      expect((await wordpos.lookup(w)).length, w).toBeGreaterThan(0);
    }
  });

  it('test scenes are unique; twins are near-duplicates that do not match', () => {
    const rates: Record<string, string> = {};
    for (const name of ['train', 'val', 'test']) {
      const imgs = splitOf(name);
      const keys = imgs.map((i) => sceneKey(i.scene));
      const dupScenes = keys.length - new Set(keys).size;
      // two images whose caption sets are identical, or a caption shared by two images
      const owners = new Map<string, Set<number>>();
      imgs.forEach((img, k) => img.sentences.forEach((s) => owners.set(s.raw, (owners.get(s.raw) ?? new Set()).add(k))));
      const sharedCaptions = [...owners.values()].filter((o) => o.size > 1).length;
      rates[name] = `${dupScenes}/${imgs.length} duplicate scenes, ${sharedCaptions}/${imgs.length * 5} captions shared by 2+ images`;
      expect(dupScenes, name).toBe(name === 'train' ? dupScenes : 0);
      expect(dupScenes / imgs.length, name).toBeLessThan(0.01);
      expect(sharedCaptions / (imgs.length * 5), name).toBeLessThan(0.01);
    }
    console.log(rates);
    // the generator's own statistics agree
    expect(big.stats.test.duplicateScenes).toBe(0);
    expect(big.stats.test.twins).toBeGreaterThan(40);
    // twins: same objects (shape+colour multiset) ignoring arrangement, yet not a match
    const test = splitOf('test');
    let twins = 0;
    for (let k = 1; k < test.length; k++) {
      const a = test[k - 1].scene;
      const b = test[k].scene;
      const bag = (s: SceneGraph) => s.objects.map((o) => `${o.shape}`).sort().join() + '/' + s.objects.map((o) => o.color).sort().join();
      if (a.objects.length >= 2 && bag(a) === bag(b)) {
        twins++;
        expect(sceneMatches(a, b)).toBe(false);
      }
    }
    expect(twins).toBeGreaterThan(40);
  });

  it('has a useful mix of 1, 2 and 3 object scenes and of both axes', () => {
    const s = big.stats.test.objects;
    expect(s[1]).toBeGreaterThan(25);
    expect(s[2]).toBeGreaterThan(150);
    expect(s[3]).toBeGreaterThan(100);
    const facts = splitOf('test').flatMap((i) => spatialFacts(i.scene));
    expect(facts.filter((f) => f[1] === 'L').length).toBeGreaterThan(200);
    expect(facts.filter((f) => f[1] === 'A').length).toBeGreaterThan(150);
  });

  it('objects stay visible at 32x32: the colour at each centre is the object colour', async () => {
    const test = await loadDataset(big.file, { split: 'test', size: 32, cacheDir: join(tmp, 'cache') });
    let ok = 0;
    let total = 0;
    for (let i = 0; i < test.count; i++) {
      for (const o of test.scenes![i]!.objects) {
        const cx = Math.min(31, Math.floor(o.x * 32));
        const cy = Math.min(31, Math.floor(o.y * 32));
        const p = (i * 32 * 32 + cy * 32 + cx) * 3;
        const [r, g, b] = COLOR_RGB[o.color as Color];
        const d = Math.hypot(test.images[p] - r, test.images[p + 1] - g, test.images[p + 2] - b);
        total++;
        if (d < 60) ok++;
      }
    }
    expect(ok / total).toBeGreaterThan(0.97);
  });
});

describe('sceneMatches', () => {
  const obj = (shape: string, color: string, x: number, y: number, size: 'small' | 'medium' | 'large' = 'medium') => ({ shape, color, size, x, y });
  const base: SceneGraph = {
    background: 'gray',
    objects: [obj('circle', 'red', 0.2, 0.5), obj('square', 'blue', 0.8, 0.5, 'large')],
    relations: [
      { subject: 0, relation: 'left of', object: 1 },
      { subject: 0, relation: 'smaller than', object: 1 },
    ],
  };

  it('ignores object order, background, exact positions and bigger/smaller relations', () => {
    const reordered: SceneGraph = {
      background: 'tan',
      objects: [obj('square', 'blue', 0.7, 0.4, 'large'), obj('circle', 'red', 0.3, 0.45)],
      relations: [{ subject: 0, relation: 'right of', object: 1 }],
    };
    expect(sceneMatches(base, reordered)).toBe(true);
    expect(sceneMatches(reordered, base)).toBe(true);
    expect(sceneKey(base)).toBe(sceneKey(reordered));
  });

  it('distinguishes swapped colours, swapped shapes, mirrored layouts, sizes and extra relations', () => {
    const swapColors = { ...base, objects: [obj('circle', 'blue', 0.2, 0.5), obj('square', 'red', 0.8, 0.5, 'large')] };
    const swapShapes = { ...base, objects: [obj('square', 'red', 0.2, 0.5), obj('circle', 'blue', 0.8, 0.5, 'large')] };
    const mirrored = { ...base, relations: [{ subject: 0, relation: 'right of' as const, object: 1 }] };
    const resized = { ...base, objects: [obj('circle', 'red', 0.2, 0.5, 'large'), obj('square', 'blue', 0.8, 0.5, 'large')] };
    const alsoAbove = { ...base, relations: [...base.relations, { subject: 0, relation: 'above' as const, object: 1 }] };
    const oneObject = { ...base, objects: [base.objects[0]], relations: [] };
    for (const other of [swapColors, swapShapes, mirrored, resized, alsoAbove, oneObject]) expect(sceneMatches(base, other)).toBe(false);
    expect(sceneMatches(base, resized, { size: false })).toBe(true);
    expect(sceneMatches(base, alsoAbove, { vertical: false })).toBe(true);
  });

  it('handles identical objects by trying their orderings', () => {
    const twoRed = (rel: 'left of' | 'right of'): SceneGraph => ({
      background: 'gray',
      objects: [obj('circle', 'red', 0.2, 0.2), obj('circle', 'red', 0.8, 0.8), obj('star', 'blue', 0.5, 0.5)],
      relations: [
        { subject: 0, relation: 'left of', object: 1 },
        { subject: 2, relation: rel, object: 0 },
      ],
    });
    // "blue star right of the left red circle" == "blue star left of the right red circle"? No: different facts.
    const a = twoRed('right of');
    const b: SceneGraph = { ...a, relations: [{ subject: 1, relation: 'left of', object: 0 }, { subject: 2, relation: 'right of', object: 1 }] };
    expect(sceneMatches(a, b)).toBe(true); // same graph with the two red circles' indices exchanged
    expect(sceneMatches(a, twoRed('left of'))).toBe(false);
  });

  it('agrees with a brute-force reference on generated scenes and shuffled copies', () => {
    const rng = new Rng(11);
    const scenes = splitOf('test').slice(0, 150).map((i) => i.scene);
    const shuffle = (s: SceneGraph): SceneGraph => {
      const perm = rng.shuffle(s.objects.map((_, i) => i));
      const inv = new Array<number>(perm.length);
      perm.forEach((old, neu) => (inv[old] = neu));
      return { ...s, objects: perm.map((old) => s.objects[old]), relations: s.relations.map((r) => ({ ...r, subject: inv[r.subject], object: inv[r.object] })) };
    };
    const reference = (a: SceneGraph, b: SceneGraph): boolean => {
      if (a.objects.length !== b.objects.length) return false;
      const n = a.objects.length;
      const lab = (o: SceneGraph['objects'][number]) => `${o.shape}|${o.color}|${o.size}`;
      const fa = new Set(spatialFacts(a).map((f) => f.join()));
      const perms = (k: number[]): number[][] => (k.length <= 1 ? [k] : k.flatMap((x, i) => perms([...k.slice(0, i), ...k.slice(i + 1)]).map((p) => [x, ...p])));
      return perms([...Array(n).keys()]).some((p) => {
        if (!a.objects.every((o, i) => lab(o) === lab(b.objects[p[i]]))) return false;
        const inv = new Array<number>(n);
        p.forEach((bi, ai) => (inv[bi] = ai));
        const fb = new Set(spatialFacts(b).map(([s, r, o]) => [inv[s], r, inv[o]].join()));
        return fa.size === fb.size && [...fa].every((f) => fb.has(f));
      });
    };
    let matches = 0;
    for (let i = 0; i < scenes.length; i++) {
      const s = scenes[i];
      expect(sceneMatches(s, shuffle(s))).toBe(true);
      for (let j = i + 1; j < Math.min(scenes.length, i + 12); j++) {
        const m = sceneMatches(s, shuffle(scenes[j]));
        expect(m).toBe(reference(s, scenes[j]));
        if (m) matches++;
      }
    }
    expect(matches).toBe(0); // test scenes are unique
  });
});

describe('captions and raster', () => {
  it('captionsForScene is deterministic by rng and uses only vocabulary words for objects', () => {
    const scene = splitOf('test').find((i) => i.scene.objects.length === 3)!.scene;
    expect(captionsForScene(scene, new Rng(1), 8)).toEqual(captionsForScene(scene, new Rng(1), 8));
    expect(captionsForScene(scene, new Rng(1), 8)).toHaveLength(8);
  });

  it('renders each shape filled at its centre and leaves the corners as background', () => {
    for (const shape of SHAPES) {
      expect(insideShape(shape as Shape, 0, 0), shape).toBe(true);
      expect(insideShape(shape as Shape, 1.3, 1.3), shape).toBe(false);
      const img = renderScene(
        { backgroundRgb: [128, 128, 128], texture: { kind: 'plain' }, objects: [{ shape: shape as Shape, x: 0.5, y: 0.5, scale: 0.2, rotation: 0, rgb: [200, 10, 10] }] },
        32,
      );
      const at = (x: number, y: number) => Array.from(img.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3));
      expect(at(16, 16), shape).toEqual([200, 10, 10]);
      expect(at(1, 1), shape).toEqual([128, 128, 128]);
    }
  });
});

describe('manyfold data CLI', () => {
  it('data scenes and data check', async () => {
    const out = join(tmp, 'cli');
    const program = new Command().exitOverride();
    registerDataCommands(program);
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      writes.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync(['node', 'manyfold', 'data', 'scenes', '--out', out, '--train', '4', '--val', '1', '--test', '2', '--seed', '3', '--quiet']);
      await program.parseAsync(['node', 'manyfold', 'data', 'check', join(out, 'dataset_scenes.json'), '--split', 'train,val', '--size', '16', '--quiet']);
    } finally {
      process.stdout.write = orig;
    }
    const gen = JSON.parse(writes[0]) as { counts: unknown; file: string };
    expect(gen.counts).toEqual({ train: 4, val: 1, test: 2 });
    const check = JSON.parse(writes[1]) as { images: number; captions: number; split: string; withScenes: number };
    expect(check).toMatchObject({ images: 5, captions: 25, split: 'train+val', withScenes: 5 });
  });
});
