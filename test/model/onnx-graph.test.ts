/**
 * The onnx inference engine (model/onnx-graph.ts + onnx-towers.ts on onnxruntime-node): the same function as the
 * tfjs dual encoder, for both families, and the same numbers as the independent PyTorch reference for imported
 * CLIP checkpoints (the fixture and bars of test/model/clip-parity.test.ts, test/reference/parity.ts).
 *
 * Bars: CLIP variants, as the tfjs model: cosine >= 0.99999 and max |diff| <= 5e-6 against the float64 reference.
 * Manyfold's own presets against the tfjs model (both float32): max |diff| <= 2e-6 per embedding value (measured
 * ~2.5e-7; a wrong activation, mask, pooling or patch order moves values by >= 1e-3 on these weights).
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import * as tf from '../../src/engine/tf.js';
import { loadArtifact, saveArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { Encoder } from '../../src/model/encoder.js';
import { loadEncoder, resolveInference } from '../../src/model/load-encoder.js';
import { onnxTowersFromWeights, openOnnxTowers } from '../../src/model/onnx-towers.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder, ModelConfig } from '../../src/model/types.js';
import { buildTinyCheckpoint, VARIANTS } from '../reference/build-checkpoints.js';
import { agreement, fixtureSchema, PARITY, referencePixels, REFERENCE_FIXTURE } from '../reference/parity.js';

const OWN_MAX_ABS = 2e-6;

let root: string;
beforeAll(async () => {
  await initBackend('wasm');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-onnx-'));
});
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** deterministic pixels in [0, 1] */
function pixels(n: number, size: number): Float32Array {
  return Float32Array.from({ length: n * size * size * 3 }, (_, i) => ((i * 2654435761) % 1009) / 1008);
}

describe("Manyfold's own presets: onnx towers equal the tfjs model", () => {
  const cases: { name: string; stem: 'linear' | 'conv' }[] = [
    { name: 'tiny, linear stem', stem: 'linear' },
    { name: 'tiny, conv stem', stem: 'conv' },
  ];
  it.each(cases)('$name: image and text embeddings (padding of several lengths)', async ({ stem }) => {
    const config: ModelConfig = modelConfigFromPreset('tiny', 300);
    config.image.stem = stem;
    const model = createDualEncoder(config, 11);
    try {
      const towers = await onnxTowersFromWeights(config, { read: (n) => model.variables.get(n)!.dataSync() as Float32Array });
      try {
        const S = config.image.size;
        const px = pixels(5, S);
        const want = tf.tidy(() => model.imageTower(tf.tensor4d(px, [5, S, S, 3])).dataSync());
        expect(maxAbsDiff(await towers.imageRows(px, 5, S), want)).toBeLessThanOrEqual(OWN_MAX_ABS);

        // rows of 3, 6 and 9 real tokens padded to 9: the padding mask and the masked mean must match
        const L = 9;
        const ids = new Int32Array(3 * L);
        [3, 6, 9].forEach((n, r) => {
          for (let k = 0; k < n; k++) ids[r * L + k] = 1 + ((r * 37 + k * 11) % 250);
        });
        const wantText = tf.tidy(() => model.textTower(tf.tensor2d(ids, [3, L], 'int32')).dataSync());
        expect(maxAbsDiff(await towers.textRows(ids, 3, L), wantText)).toBeLessThanOrEqual(OWN_MAX_ABS);
      } finally {
        await towers.release();
      }
    } finally {
      model.dispose();
    }
  });
});

describe('imported CLIP checkpoints: onnx towers from the artifact equal the independent reference', () => {
  it.each(VARIANTS.map((v) => v.name))('%s', async (name) => {
    const fixture = fixtureSchema.parse(JSON.parse(await fs.readFile(REFERENCE_FIXTURE, 'utf8')));
    const ref = fixture.variants[name];
    const built = await buildTinyCheckpoint(path.join(root, 'ckpt', name), name);
    const out = path.join(root, 'artifacts', name);
    await importClipCheckpoint({ from: built.dir, out, log: () => undefined });
    const { manifest } = await loadArtifact(out).then((a) => {
      a.model.dispose();
      return a;
    });
    // the weights are referenced in the artifact's shards (external data), not copied: the path users serve
    const towers = await openOnnxTowers(out, manifest);
    try {
      const { images, size } = ref.inputs.pixels;
      const px = Float32Array.from(referencePixels(images, size), (v) => v / 255);
      const img = agreement(await towers.imageRows(px, images, size), ref.image_embeds);
      const rows = ref.inputs.input_ids;
      const txt = agreement(await towers.textRows(Int32Array.from(rows.flat()), rows.length, rows[0].length), ref.text_embeds);
      expect(img.minCos, 'min cosine of image embeddings').toBeGreaterThanOrEqual(PARITY.minCos);
      expect(img.maxAbs, 'max |diff| of image embeddings').toBeLessThanOrEqual(PARITY.maxAbs);
      expect(txt.minCos, 'min cosine of text embeddings').toBeGreaterThanOrEqual(PARITY.minCos);
      expect(txt.maxAbs, 'max |diff| of text embeddings').toBeLessThanOrEqual(PARITY.maxAbs);
      console.log(`onnx ${name}: image max |d| ${img.maxAbs.toExponential(1)}, text max |d| ${txt.maxAbs.toExponential(1)}`);
    } finally {
      await towers.release();
    }
  });
});

describe('the Encoder on onnx', () => {
  let dir: string;
  let model: DualEncoder;
  const texts = ['a red circle', 'two small blue squares on the left', 'x', ''];

  beforeAll(async () => {
    const tokenizer = buildTokenizer(texts, { maxLen: 32 });
    const config = modelConfigFromPreset('tiny', tokenizer.vocabSize);
    model = createDualEncoder(config, 5);
    dir = path.join(root, 'tiny-artifact');
    await saveArtifact(dir, { model, tokenizer, training: { seed: 5 } });
  });
  afterAll(() => model?.dispose());

  it("'auto' picks onnx here (onnxruntime-node is installed) and 'tfjs' is honoured", async () => {
    expect((await resolveInference('auto')).engine).toBe('onnx');
    expect((await resolveInference('tfjs')).engine).toBe('tfjs');
    const enc = await loadEncoder(dir, { inference: 'tfjs' });
    expect(enc.engine).toBe('tfjs');
    await enc.dispose();
  });

  it('embeds as the tfjs encoder does, builds the differentiable model only on demand, and disposes both', async () => {
    const onnx = await loadEncoder(dir, { inference: 'onnx' });
    const tfjs = await loadEncoder(dir, { inference: 'tfjs' });
    try {
      expect(onnx.engine).toMatch(/^onnxruntime-node/);
      expect(() => onnx.model, 'no tfjs model until something needs gradients').toThrow(/not loaded yet.*differentiable/);
      const S = onnx.imageSize;
      const u8 = Uint8Array.from({ length: 3 * S * S * 3 }, (_, i) => (i * 7) % 256);
      expect(maxAbsDiff(await onnx.embedImagesMatrixAsync(u8, 3, 2), await tfjs.embedImagesMatrix(u8, 3))).toBeLessThanOrEqual(OWN_MAX_ABS);
      expect(maxAbsDiff(await onnx.embedTextsMatrixAsync(texts, 3), await tfjs.embedTextsMatrix(texts))).toBeLessThanOrEqual(OWN_MAX_ABS);
      await expect(onnx.embedImagesMatrixAsync(u8.subarray(1), 3)).rejects.toThrow(/expected 3 x/);

      const before = tf.memory().numTensors;
      const m = await onnx.differentiable();
      expect(await onnx.differentiable(), 'built once').toBe(m);
      expect(tf.memory().numTensors).toBeGreaterThan(before);
      expect(maxAbsDiff(await onnx.embedTextsMatrix(texts), await tfjs.embedTextsMatrix(texts)), 'the deferred model is the artifact').toBe(0);
      await onnx.dispose();
      expect(tf.memory().numTensors).toBe(before);
      await expect(onnx.embedTextsMatrixAsync(texts)).rejects.toThrow();
    } finally {
      await tfjs.dispose();
    }
  });

  it('a tampered shard is refused before any session starts (the artifact is verified first)', async () => {
    const copy = path.join(root, 'tampered');
    await fs.cp(dir, copy, { recursive: true });
    const shard = (await fs.readdir(copy)).find((f) => f.startsWith('weights-'))!;
    const fh = await fs.open(path.join(copy, shard), 'r+');
    await fh.write(new Uint8Array([1, 2, 3, 4]), 0, 4, 8);
    await fh.close();
    await expect(loadEncoder(copy, { inference: 'onnx' })).rejects.toThrow(new RegExp(`${shard}.*sha256`));
  });

  it('Encoder refuses an inconsistent tokenizer as before (deferred model or not)', () => {
    const tok = buildTokenizer(texts, { maxLen: 32 });
    const config = modelConfigFromPreset('tiny', tok.vocabSize - 1);
    expect(() => new Encoder({ config, load: async () => model }, tok)).toThrow(/vocabSize/);
  });
});
