/**
 * infra/build-worker-assets.ts refuses what a Worker cannot hold, before writing anything, naming the measured
 * size and the limit: the 128 MiB isolate memory (a ViT-B/32 CLIP's ~600 MB of float32 weights; Manyfold's base
 * preset), the 25 MiB per static asset, and CLIP-family models (the Worker's pure-JS image decoder has no
 * CLIPImageProcessor resize). A tiny Manyfold model still builds.
 */
import { existsSync } from 'node:fs';
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
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { countParameters, modelConfigFromPreset } from '../../src/model/presets.js';
import { makeModels, rmrf, tmp } from '../api/helpers.js';
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

/** a measured artifact without writing hundreds of MB: only the numbers the refusal reads */
function fake(id: string, preset: string, weightBytes: number, family?: 'clip'): MeasuredModel {
  const shard = 32 * 1024 * 1024;
  const files = Array.from({ length: Math.ceil(weightBytes / shard) }, (_, i) => ({ path: `weights-${String(i).padStart(3, '0')}.bin`, bytes: Math.min(shard, weightBytes - i * shard) }));
  return { dir: `/models/${id}`, manifest: { id, config: { preset, ...(family ? { family } : {}) } } as unknown as MeasuredModel['manifest'], files, weightBytes };
}

describe('Worker asset build: refusals with the measured size and the limit', () => {
  it('ViT-B/32-sized weights: refused for memory (and for 32 MiB shards), naming bytes and limits', () => {
    const b32 = 151_277_313 * 4; // ViT-B/32 CLIP parameters (openai/clip-vit-base-patch32) in float32
    const reasons = workerRefusals([fake('clip-b32', 'clip', b32, 'clip')]);
    expect(reasons[0]).toContain(`a Worker isolate has 128.0 MiB of memory; these models need about ${((2 * b32 + WORKER_RUNTIME_ALLOWANCE) / 2 ** 20).toFixed(1)} MiB`);
    expect(reasons[0]).toContain(`clip-b32 (clip): ${b32} bytes of weights (${(b32 / 2 ** 20).toFixed(1)} MiB)`);
    expect(reasons.filter((r) => r.includes('Workers static assets allow 25.0 MiB per file')).length).toBe(18);
    expect(reasons.some((r) => r.includes('is a CLIP-family model'))).toBe(true);
  });

  it("Manyfold's presets: base is refused, small fits (one model), two smalls do not", () => {
    const bytes = (p: 'small' | 'base') => countParameters(modelConfigFromPreset(p, 4000)) * 4;
    const need = ((2 * bytes('base') + WORKER_RUNTIME_ALLOWANCE) / 2 ** 20).toFixed(1); // ~625 MiB
    expect(workerRefusals([fake('base', 'base', bytes('base'))]).join()).toContain(`128.0 MiB of memory; these models need about ${need} MiB`);
    const small = fake('small', 'small', bytes('small'));
    small.files = small.files.map((f) => ({ ...f, bytes: Math.min(f.bytes, ASSET_FILE_LIMIT) }));
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
