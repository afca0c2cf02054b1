/**
 * The pretrained tiny base committed in models/tiny-scenes-base (issue 23 item 6): its hashes hold, it loads with
 * the artifact loader, and it retrieves far better than chance on scenes it never saw, where a randomly initialised
 * model of the same architecture does not; a damaged or git-lfs checkout is refused naming the file.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_RECIPE, BUNDLED_BASE_DIR, artifactFileHashes, readSums, verifyBundledBase } from '../../scripts/bundled-base.js';
import { loadConfig } from '../../src/config.js';
import { initBackend } from '../../src/engine/backend.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import { loadSplit } from '../../src/data/split.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { evaluateClean } from '../../src/eval/evaluate.js';
import { loadArtifact, MANIFEST_FILE, type LoadedArtifact } from '../../src/model/artifact.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { Encoder } from '../../src/model/encoder.js';

/** unseen scenes: the held-out test stream of another generator seed than the base's */
const SCENES = 30;
/** R@1 both ways must exceed this; chance is ~1/SCENES (TR: 5 gold captions among 5*SCENES, IR: 1 image among SCENES) */
const BETTER_THAN_CHANCE = 35;

let root: string;
let base: LoadedArtifact;
let split: DatasetSplit;

beforeAll(async () => {
  await initBackend('wasm');
  root = mkdtempSync(join(tmpdir(), 'mf-bundled-'));
  const g = await generateScenes({ out: join(root, 'scenes'), train: 0, val: 0, test: SCENES, seed: BASE_RECIPE.data.seed + 7 });
  base = await loadArtifact(BUNDLED_BASE_DIR);
  split = await loadSplit(loadConfig({ overrides: { data: { file: g.file } } }), 'test', base.model.config, true);
}, 60_000);

afterAll(() => {
  base?.model.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('the bundled tiny base (models/tiny-scenes-base)', () => {
  it('SHA256SUMS covers the manifest and every file it lists, and every hash holds', async () => {
    const sums = await readSums(BUNDLED_BASE_DIR);
    const files = await artifactFileHashes(BUNDLED_BASE_DIR);
    expect(files.map((f) => f.path).sort()).toEqual([...sums.keys()].sort());
    for (const f of files) expect(sums.get(f.path), f.path).toBe(f.sha256);
    const manifest = await verifyBundledBase(BUNDLED_BASE_DIR);
    expect(manifest.id).toBe(base.manifest.id);
    // the recipe it states is the one the demo and `npm run demo:base` use
    expect(manifest.training).toMatchObject({ method: BASE_RECIPE.method, seed: BASE_RECIPE.seed, epochs: BASE_RECIPE.epochs });
    expect((manifest as unknown as { bundle: { recipe: unknown } }).bundle.recipe).toEqual(JSON.parse(JSON.stringify(BASE_RECIPE)));
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    expect(bytes).toBeLessThan(8e6);
  });

  it('retrieves unseen scenes far better than chance; a random model of its architecture does not', async () => {
    const trained = (await evaluateClean(new Encoder(base.model, base.tokenizer, base.manifest), split)).summary;
    const random = createDualEncoder(base.model.config, 1);
    try {
      const chance = (await evaluateClean(new Encoder(random, base.tokenizer), split)).summary;
      expect(chance.tr.r1).toBeLessThan(BETTER_THAN_CHANCE);
      expect(chance.ir.r1).toBeLessThan(BETTER_THAN_CHANCE);
    } finally {
      random.dispose();
    }
    expect(trained.nImages).toBe(SCENES);
    expect(trained.tr.r1).toBeGreaterThan(BETTER_THAN_CHANCE);
    expect(trained.ir.r1).toBeGreaterThan(BETTER_THAN_CHANCE);
  });

  it('a damaged file or a git-lfs pointer is refused naming the file', async () => {
    const copy = join(root, 'copy');
    cpSync(BUNDLED_BASE_DIR, copy, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, MANIFEST_FILE), 'utf8')) as { files: { path: string }[] };
    const shard = manifest.files.find((f) => f.path.startsWith('weights-'))!.path;
    const bytes = readFileSync(join(copy, shard));
    bytes[1000] ^= 1;
    writeFileSync(join(copy, shard), bytes);
    await expect(verifyBundledBase(copy)).rejects.toThrow(new RegExp(`${shard}.*sha256`));

    cpSync(BUNDLED_BASE_DIR, copy, { recursive: true });
    writeFileSync(join(copy, 'tokenizer.json'), 'version https://git-lfs.github.com/spec/v1\noid sha256:0000\nsize 12\n');
    await expect(verifyBundledBase(copy)).rejects.toThrow(/tokenizer\.json is a git-lfs pointer/);

    cpSync(BUNDLED_BASE_DIR, copy, { recursive: true });
    rmSync(join(copy, 'SHA256SUMS'));
    await expect(verifyBundledBase(copy)).rejects.toThrow(/SHA256SUMS is missing/);
  });
});
