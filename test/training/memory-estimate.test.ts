/**
 * src/model/memory.ts: parameter counts (against the variables createDualEncoder builds, and the published counts
 * of OpenAI's CLIP checkpoints), the terms of the estimate, the refusal on wasm (a message naming the sizes and
 * the ways out) and, through `manyfold train`'s runTraining, that the refusal comes before any data is decoded.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, trainSchema } from '../../src/config.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import {
  checkMemoryFits,
  estimateTrainingMemory,
  formatMemoryEstimate,
  MemoryLimitError,
  parameterCount,
  towerParameterCount,
  trainableParameterCount,
  WASM_HEAP_LIMIT_BYTES,
  type MemoryEstimateInput,
} from '../../src/model/memory.js';
import { modelConfigFor } from '../../src/model/presets.js';
import type { ModelConfig } from '../../src/model/types.js';
import { trainableNames } from '../../training/freeze.js';
import { captionTokenEstimate, estimateRunMemory, runTraining } from '../../training/run.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mf-memest-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** an imported CLIP's config (the shapes of OpenAI's checkpoints) */
const clip = (o: { width: number; depth: number; patch: number; textWidth: number; embed: number }): ModelConfig => ({
  preset: 'clip',
  family: 'clip',
  embedDim: o.embed,
  image: { size: 224, patch: o.patch, width: o.width, depth: o.depth, heads: o.width / 64, mlpRatio: 4 },
  text: { width: o.textWidth, depth: 12, heads: o.textWidth / 64, mlpRatio: 4, maxLen: 77, vocabSize: 49408 },
  initLogitScale: Math.log(100),
  clip: { activation: 'quick_gelu', textPooling: 'argmax', eosTokenId: 49407, pixelMean: [0.48145466, 0.4578275, 0.40821073], pixelStd: [0.26862954, 0.26130258, 0.27577711], lnEps: 1e-5, resizeShortestEdge: 224 },
});
const B32 = clip({ width: 768, depth: 12, patch: 32, textWidth: 512, embed: 512 });
const B16 = clip({ width: 768, depth: 12, patch: 16, textWidth: 512, embed: 512 });
const L14 = clip({ width: 1024, depth: 24, patch: 14, textWidth: 768, embed: 768 });

describe('parameter counts', () => {
  it("equal the variables createDualEncoder builds (presets, conv stem), trainable ones those freeze.ts selects", () => {
    for (const c of [modelConfigFor('tiny', 300), modelConfigFor('small', 1000), modelConfigFor('tiny', 300, { stem: 'conv' })]) {
      const m = createDualEncoder(c, 1);
      const sizeOf = (names: string[]) => names.reduce((a, n) => a + m.variables.get(n)!.size, 0);
      expect(parameterCount(c)).toBe(sizeOf([...m.variables.keys()]));
      for (const method of ['clean', 'mat', 'tecoa', 'fare'] as const) {
        for (const freezeBlocks of [0, 1, 2]) {
          const imageOnly = method === 'tecoa' || method === 'fare';
          expect(trainableParameterCount(c, { freezeBlocks, method }), `${c.preset} ${method} ${freezeBlocks}`).toBe(sizeOf(trainableNames(m, { freezeBlocks, imageOnly })));
        }
      }
      m.dispose();
    }
  });

  it("equal the published counts of OpenAI's CLIP ViT-B/32, B/16 and L/14 (no patch bias, ln_pre)", () => {
    expect(parameterCount(B32)).toBe(151_277_313);
    expect(parameterCount(B16)).toBe(149_620_737);
    expect(parameterCount(L14)).toBe(427_616_513);
  });
});

describe('the estimate', () => {
  const base: MemoryEstimateInput = { model: B32, method: 'mat', batch: 8, texts: 16, textLen: 20, freezeBlocks: 0, gradAccum: 1 };

  it('sums weights, AdamW moments of trainable parameters, gradients (twice when accumulating) and activations', () => {
    const e = estimateTrainingMemory(base);
    expect(e.parameters).toBe(151_277_313);
    expect(e.weights).toBe(4 * 151_277_313);
    expect(e.moments).toBe(8 * e.trainableParameters);
    expect(e.gradients).toBe(4 * e.trainableParameters);
    expect(e.packedWeights).toBe(0);
    expect(e.total).toBe(e.weights + e.moments + e.gradients + e.activations);
    // wasm: XNNPACK keeps a packed copy of every weight it multiplies by
    const wasm = estimateTrainingMemory({ ...base, backend: 'wasm' });
    expect(wasm.packedWeights).toBe(e.weights);
    expect(wasm.total).toBe(e.total + e.weights);
    expect(estimateTrainingMemory({ ...base, gradAccum: 4 }).gradients).toBe(2 * e.gradients);
    expect(estimateTrainingMemory({ ...base, extraModels: 1 }).weights).toBe(2 * e.weights);
    // activations: per micro-batch row, plus one copy of each taped tower's weights (saved for the backward)
    const weightCopies = 4 * (towerParameterCount(B32, 'image') + towerParameterCount(B32, 'text'));
    expect(towerParameterCount(B32, 'image') + towerParameterCount(B32, 'text') + 1).toBe(e.parameters);
    const b16 = estimateTrainingMemory({ ...base, batch: 16, texts: 32 });
    expect(b16.activations - weightCopies).toBeCloseTo(2 * (e.activations - weightCopies), 0);
    const frozen = estimateTrainingMemory({ ...base, freezeBlocks: 8 });
    expect(frozen.trainableParameters).toBeLessThan(0.5 * e.trainableParameters);
    expect(frozen.total).toBeLessThan(e.total);
    // TeCoA runs the text tower outside the tape and trains the image tower only
    const tecoa = estimateTrainingMemory({ ...base, method: 'tecoa' });
    expect(tecoa.activations).toBeLessThan(e.activations);
    expect(tecoa.trainableParameters).toBe(trainableParameterCount(B32, { freezeBlocks: 0, method: 'tecoa' }));
    expect(formatMemoryEstimate(e, 'wasm')).toMatch(/memory estimate \(wasm\): [\d.]+ GiB of the 4\.00 GiB heap\n {2}weights +577\.1 MiB {2}\(151\.3M parameters, 151\.3M trainable\)/);
  });

  it('refuses on wasm when it exceeds the heap, naming the sizes and the ways out; reports only on other backends', () => {
    const big = estimateTrainingMemory({ ...base, batch: 32, texts: 64 });
    expect(big.total).toBeGreaterThan(WASM_HEAP_LIMIT_BYTES);
    const run = { batch: 32, freezeBlocks: 0, gradAccum: 1, depth: 12 };
    expect(() => checkMemoryFits(big, 'wasm', run)).toThrow(MemoryLimitError);
    let message = '';
    try {
      checkMemoryFits(big, 'wasm', run);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^training needs about [\d.]+ GiB of memory \(weights 577\.1 MiB, AdamW moments 1\.13 GiB, gradients 577\.1 MiB, activations [\d.]+ GiB\), more than the wasm backend's 4\.00 GiB heap/);
    expect(message).toMatch(/a smaller --batch \(now 32; .*\), with --grad-accum 2 to keep the effective batch/);
    expect(message).toMatch(/--freeze-blocks N \(now 0\)/);
    expect(message).toMatch(/the GPU backend \(--backend tensorflow/);
    expect(() => checkMemoryFits(big, 'tensorflow', run)).not.toThrow();
    expect(() => checkMemoryFits(big, 'webgpu', run)).not.toThrow();
    // the ways out: micro-batches of 8 with 6 frozen blocks fit; micro-batches of 4 accumulated without freezing do
    // not (a full fine-tune of B/32 holds weights, their packed copies, moments, gradients and their running sum:
    // 3.4 GiB before any activation)
    expect(() => checkMemoryFits(estimateTrainingMemory({ ...base, backend: 'wasm', freezeBlocks: 6 }), 'wasm', { ...run, batch: 8, freezeBlocks: 6 })).not.toThrow();
    expect(() => checkMemoryFits(estimateTrainingMemory({ ...base, backend: 'wasm', batch: 4, texts: 8, gradAccum: 2 }), 'wasm', { ...run, batch: 4, gradAccum: 2 })).toThrow(MemoryLimitError);
  });

  it("takes a run's caption length from the data (a high percentile of word counts), capped at the context", () => {
    const caps = Array.from({ length: 200 }, (_, i) => Array.from({ length: 5 + (i % 10) }, () => 'word').join(' '));
    expect(captionTokenEstimate(caps, 77)).toBe(Math.ceil(1.3 * 14) + 2);
    expect(captionTokenEstimate(caps, 16)).toBe(16);
    expect(captionTokenEstimate([], 32)).toBe(32);
    const tc = trainSchema.parse({ method: 'mat', batch: 8, captionsPerImage: 2, augment: ['nn'], augmentTexts: 1 });
    const e = estimateRunMemory(B32, tc, 20);
    expect(e).toEqual(estimateTrainingMemory({ model: B32, method: 'mat', batch: 8, texts: 24, textLen: 20, extraImages: 0, freezeBlocks: 0, gradAccum: 1, extraModels: 0 }));
    expect(estimateRunMemory(B32, { ...tc, method: 'fare' }, 20).weights).toBe(2 * e.weights);
  });
});

describe('manyfold train', () => {
  it('refuses a run that cannot fit wasm before decoding any image (the images do not even exist), and not on the cpu backend', async () => {
    const data = join(dir, 'data.json');
    const images = Array.from({ length: 4 }, (_, i) => ({ filename: `missing-${i}.png`, split: 'train', sentences: [{ raw: 'a red circle above a blue square' }] }));
    writeFileSync(data, JSON.stringify({ images }));
    const config = (backend: 'wasm' | 'cpu') => loadConfig({ overrides: { backend, data: { file: data }, train: { preset: 'base', batch: 256 } } });
    await expect(runTraining({ config: config('wasm'), out: join(dir, 'run'), resume: false, evaluate: false, quiet: true })).rejects.toThrow(
      /more than the wasm backend's 4\.00 GiB heap[\s\S]*--batch \(now 256/,
    );
    await expect(runTraining({ config: config('cpu'), out: join(dir, 'run-cpu'), resume: false, evaluate: false, quiet: true })).rejects.toThrow(/image not found/);
  });
});
