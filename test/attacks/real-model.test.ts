/** The attacks against the real tiny dual encoder on the wasm backend (the production path). */
import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { attackByName, embedTextRows } from '../../src/attacks/index.js';
import type { DualEncoder } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { CAPTIONS } from './helpers.js';

let encoder: DualEncoder;
const tokenizer = buildTokenizer(CAPTIONS, { maxLen: 16 });
const n = 4;
const S = 32;
const rng = new Rng(5);
const images = Float32Array.from({ length: n * S * S * 3 }, () => rng.next());
const captions = CAPTIONS.slice(0, 2 * n);
const captionToImage = captions.map((_, i) => Math.floor(i / 2));

beforeAll(async () => {
  await initBackend('wasm');
  encoder = createDualEncoder(modelConfigFromPreset('tiny', tokenizer.vocabSize), 0);
});

describe('attacks on the tiny dual encoder (wasm)', () => {
  it('length-bucketed text embedding equals the full padded textTower call', async () => {
    const texts = [...CAPTIONS, 'a', 'a red circle', CAPTIONS[0] + ' and ' + CAPTIONS[1]];
    const fast = await embedTextRows(encoder, tokenizer, texts, 3);
    const full = tf.tidy(() => encoder.textTower(tf.tensor2d(tokenizer.encodeBatch(texts), [texts.length, tokenizer.maxLen], 'int32')).dataSync());
    for (let i = 0; i < full.length; i++) expect(Math.abs(fast[i] - full[i])).toBeLessThan(1e-5);
  });

  it('PGD: budget exact, weights untouched, tensors flat', async () => {
    const before = new Map([...encoder.variables].map(([k, v]) => [k, v.dataSync().slice()]));
    const attack = attackByName('pgd', { eps: 4 / 255, stepSize: 1 / 255, steps: 3, seed: 1 });
    const batch = { images, size: S, captions, captionToImage };
    const r = await attack.run(batch, { encoder, tokenizer });
    expect(r.images!.linf.every((v) => v <= 4 / 255 + 1e-6)).toBe(true);
    expect(r.images!.objective.every(Number.isFinite)).toBe(true);
    const t0 = tf.memory().numTensors;
    const r2 = await attack.run(batch, { encoder, tokenizer });
    expect(tf.memory().numTensors).toBe(t0);
    expect(Buffer.from(r2.images!.data.buffer).equals(Buffer.from(r.images!.data.buffer))).toBe(true);
    for (const [k, v] of encoder.variables) expect(Buffer.from(v.dataSync().buffer).equals(Buffer.from(before.get(k)!.buffer))).toBe(true);
  });

  it('SGA and Co-Attack run end to end', async () => {
    for (const name of ['sga', 'coattack'] as const) {
      const r = await attackByName(name, { steps: 2, seed: 1 }).run({ images, size: S, captions, captionToImage }, { encoder, tokenizer });
      expect(r.images!.count).toBe(n);
      expect(r.captions!.texts.length).toBe(captions.length);
      expect(r.images!.linf.every((v) => v <= 2 / 255 + 1e-6)).toBe(true);
    }
  });
});
