/**
 * infra/build-worker-assets.ts refuses what a Worker cannot hold, before writing anything, naming the measured
 * size and the limit: the 128 MiB isolate memory (a ViT-B/32 CLIP's ~600 MB of float32 weights; Manyfold's base
 * preset), a tensor above the 25 MiB per static asset (one tensor never spans two shards), and CLIP-family models
 * (the Worker's pure-JS image decoder has no CLIPImageProcessor resize). Shards above the asset limit are re-sharded
 * on copy, the manifest rewritten and verified: the small preset (saved with 32 MiB shards) becomes assets, and a
 * tiny model re-sharded at a small limit loads with the same id and bit-identical weights.
 */
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ASSET_FILE_LIMIT,
  buildWorkerAssets,
  WORKER_MEMORY_LIMIT,
  WORKER_RUNTIME_ALLOWANCE,
  workerMemoryEstimate,
  workerRefusals,
  type MeasuredModel,
} from '../../infra/build-worker-assets.js';
import { initBackend } from '../../src/engine/backend.js';
import { DEFAULT_SHARD_BYTES, openArtifactWeights, readManifest, saveArtifact, verifyArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { countParameters, modelConfigFromPreset } from '../../src/model/presets.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { makeModels, rmrf, tmp } from '../api/helpers.js';
import { SAMPLE_CAPTIONS } from '../fixtures/captions.js';
import { buildTinyCheckpoint } from '../reference/build-checkpoints.js';

let root: string;
let tinyDir: string;
let clipDir: string;
beforeAll(async () => {
  root = tmp('worker-assets');
  tinyDir = (await makeModels(join(root, 'm'), [1]))[0].dir;
  clipDir = join(root, 'clip');
  await importClipCheckpoint({ from: (await buildTinyCheckpoint(join(root, 'ckpt'), 'hf-f32-quickgelu-argmax')).dir, out: clipDir, log: () => undefined });
});
afterAll(() => rmrf(root));

/** a measured artifact without writing hundreds of MB: only the numbers the refusal reads (its largest tensor named) */
function fake(id: string, preset: string, weightBytes: number, largest: { name: string; shape: number[] }, family?: 'clip'): MeasuredModel {
  const shard = DEFAULT_SHARD_BYTES;
  const files = Array.from({ length: Math.ceil(weightBytes / shard) }, (_, i) => ({ path: `weights-${String(i).padStart(3, '0')}.bin`, bytes: Math.min(shard, weightBytes - i * shard) }));
  const weights = [{ ...largest, dtype: 'float32', file: 'weights-000.bin', offset: 0 }];
  return { dir: `/models/${id}`, manifest: { id, config: { preset, ...(family ? { family } : {}) }, weights } as unknown as MeasuredModel['manifest'], files, weightBytes };
}

describe('Worker asset build: refusals with the measured size and the limit', () => {
  it('ViT-B/32-sized weights: refused for memory and for its 101 MB token embedding (no shard can hold it), naming bytes and limits', () => {
    const b32 = 151_277_313 * 4; // ViT-B/32 CLIP parameters (openai/clip-vit-base-patch32) in float32
    const reasons = workerRefusals([fake('clip-b32', 'clip', b32, { name: 'text.token_embedding', shape: [49408, 512] }, 'clip')]);
    expect(reasons[0]).toContain(`a Worker isolate has 128.0 MiB of memory; these models need about ${((2 * b32 + WORKER_RUNTIME_ALLOWANCE) / 2 ** 20).toFixed(1)} MiB`);
    expect(reasons[0]).toContain(`clip-b32 (clip): ${b32} bytes of weights (${(b32 / 2 ** 20).toFixed(1)} MiB)`);
    // 32 MiB shards alone are no refusal any more (re-sharded on copy); the one tensor above 25 MiB is
    expect(reasons).toContain(
      'clip-b32: weight text.token_embedding is 101187584 bytes (96.5 MiB); Workers static assets allow 25.0 MiB per file and one tensor never spans two shards, so no re-sharding can make it an asset',
    );
    expect(reasons.some((r) => r.includes('is a CLIP-family model'))).toBe(true);
  });

  it("Manyfold's presets: base is refused, small fits (one model), two smalls do not", () => {
    const bytes = (p: 'small' | 'base') => countParameters(modelConfigFromPreset(p, 4000)) * 4;
    const need = ((2 * bytes('base') + WORKER_RUNTIME_ALLOWANCE) / 2 ** 20).toFixed(1); // ~625 MiB
    const embedding = (p: 'small' | 'base') => ({ name: 'text.token_embedding', shape: [4000, modelConfigFromPreset(p, 4000).text.width] });
    expect(workerRefusals([fake('base', 'base', bytes('base'), embedding('base'))]).join()).toContain(`128.0 MiB of memory; these models need about ${need} MiB`);
    const small = fake('small', 'small', bytes('small'), embedding('small'));
    // its first 32 MiB shard is above the asset limit: no refusal, it is re-sharded on copy (tested below)
    expect(small.files.some((f) => f.bytes > ASSET_FILE_LIMIT)).toBe(true);
    expect(workerRefusals([small])).toEqual([]);
    expect(workerMemoryEstimate([bytes('small')])).toBeLessThan(WORKER_MEMORY_LIMIT);
    expect(workerMemoryEstimate([bytes('small'), bytes('small')])).toBeGreaterThan(WORKER_MEMORY_LIMIT);
  });

  it('a real imported (tiny) CLIP is refused before anything is written; a tiny Manyfold model builds', async () => {
    const out = join(root, 'assets');
    await expect(buildWorkerAssets({ modelDirs: [tinyDir, clipDir], outDir: out })).rejects.toThrow(/is a CLIP-family model: the Worker's image decoder \(src\/edge\/sharp-shim\.ts\) has no CLIPImageProcessor resize/);
    expect(existsSync(out)).toBe(false);
    const r = await buildWorkerAssets({ modelDirs: [tinyDir], outDir: out });
    expect(r.models.length).toBe(1);
    expect(existsSync(join(out, 'model', 'manifest.json'))).toBe(true);
  });
});

describe('Worker asset build: shards above the asset limit are re-sharded on copy (manifest rewritten and verified)', () => {
  it('the small preset saved with 32 MiB shards (one above 25 MiB) becomes assets: every file <= 25 MiB, same id, verified', async () => {
    await initBackend('wasm');
    const tok = buildTokenizer([...SAMPLE_CAPTIONS], { maxLen: 32 });
    const model = createDualEncoder(modelConfigFromPreset('small', tok.vocabSize), 3);
    const src = join(root, 'small');
    let id: string;
    try {
      id = (await saveArtifact(src, { model, tokenizer: tok, training: { seed: 3, method: 'untrained (asset test)' } })).id;
    } finally {
      model.dispose();
    }
    const before = (await readManifest(src)).files.filter((f) => f.path.startsWith('weights-'));
    expect(Math.max(...before.map((f) => f.bytes))).toBeGreaterThan(ASSET_FILE_LIMIT);
    const out = join(root, 'assets-small');
    const r = await buildWorkerAssets({ modelDirs: [src], outDir: out });
    expect(r.resharded).toHaveLength(1);
    expect(r.resharded[0]).toMatchObject({ id, shardsBefore: before.length });
    expect(r.resharded[0].largestShard).toBeLessThanOrEqual(ASSET_FILE_LIMIT);
    const copy = await verifyArtifact(join(out, 'model'));
    expect(copy.id).toBe(id);
    for (const f of await readdir(join(out, 'model'))) expect((await stat(join(out, 'model', f))).size, f).toBeLessThanOrEqual(ASSET_FILE_LIMIT);
    console.log(`[worker assets] small preset (${countParameters(copy.config)} parameters): ${r.resharded[0].shardsBefore} -> ${r.resharded[0].shardsAfter} weight shards`);
  });

  it('a tiny model: a 64 KiB limit (below its largest tensor) is refused before writing; at its largest tensor, many shards, the same id and bit-identical weights', async () => {
    const out = join(root, 'assets-64k');
    const src = await openArtifactWeights(tinyDir);
    const big = Math.max(...src.manifest.weights.map((w) => w.shape.reduce((a, d) => a * d, 1) * 4));
    expect(big).toBeGreaterThan(64 * 1024);
    await expect(buildWorkerAssets({ modelDirs: [tinyDir], outDir: out, assetLimit: 64 * 1024 })).rejects.toThrow(/and one tensor never spans two shards, so no re-sharding can make it an asset/);
    expect(existsSync(out)).toBe(false);
    const fits = big; // the smallest limit that holds every tensor
    const r = await buildWorkerAssets({ modelDirs: [tinyDir], outDir: out, assetLimit: fits });
    expect(r.resharded[0].shardsAfter).toBeGreaterThan(r.resharded[0].shardsBefore);
    expect(r.resharded[0].largestShard).toBeLessThanOrEqual(fits);
    const copy = await openArtifactWeights(join(out, 'model'));
    try {
      expect(copy.manifest.id).toBe(src.manifest.id);
      expect(copy.manifest.weights.map((w) => w.name)).toEqual(src.manifest.weights.map((w) => w.name));
      for (const w of src.manifest.weights) expect(Buffer.from((await copy.read(w.name)).buffer).equals(Buffer.from((await src.read(w.name)).buffer)), w.name).toBe(true);
    } finally {
      await Promise.all([copy.close(), src.close()]);
    }
  });

  it('a snapshot above the asset limit is refused, naming its size', async () => {
    const out = join(root, 'assets-snap');
    const manifest = join(tinyDir, 'manifest.json');
    const size = (await stat(manifest)).size;
    await expect(buildWorkerAssets({ modelDirs: [tinyDir], outDir: out, snapshot: manifest, assetLimit: Math.max(1024, size - 1) })).rejects.toThrow(
      new RegExp(`manifest\\.json is ${size} bytes .*Workers static assets allow .* per file: serve a corpus this large from Pinecone`),
    );
    expect(existsSync(out)).toBe(false);
  });
});
