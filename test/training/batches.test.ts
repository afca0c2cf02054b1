/**
 * Length-bucketed caption batches (training/batches.ts stackIdsBucketed): the buckets partition the captions,
 * each is padded to its own longest caption only, owners follow their captions, and the contrastive loss with
 * its gradients equals the single padded batch's (pads are masked). A small real DualEncoder on wasm.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import type { DualEncoder } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { stackIds, stackIdsBucketed, textTowerBucketed } from '../../training/batches.js';
import { multiPositiveInfoNce } from '../../training/losses/clip.js';

const rng = new Rng(9);
// 24 "captions" of 3..20 tokens (ids 1..49), 2 per image
const tokenized = Array.from({ length: 24 }, () => Array.from({ length: 3 + rng.int(18) }, () => 1 + rng.int(49)));
const captions = rng.shuffle(Array.from({ length: 24 }, (_, i) => i));
const owner = Int32Array.from(captions, (_, j) => Math.floor(j / 2));

let model: DualEncoder;
beforeAll(async () => {
  await initBackend('wasm');
  model = createDualEncoder(
    {
      preset: 'test',
      embedDim: 16,
      image: { size: 16, patch: 8, width: 16, depth: 1, heads: 2, mlpRatio: 2 },
      text: { width: 32, depth: 2, heads: 4, mlpRatio: 2, maxLen: 24, vocabSize: 50 },
      initLogitScale: Math.log(1 / 0.07),
    },
    1,
  );
});
afterAll(() => model.dispose());

describe('stackIdsBucketed', () => {
  it('partitions the captions into length-sorted buckets padded to their own longest, owners permuted alike', () => {
    const { parts, owner: permuted } = stackIdsBucketed(tokenized, captions, owner, 4);
    expect(parts.map((p) => p.rows)).toEqual([6, 6, 6, 6]);
    const rows: number[][] = [];
    for (const p of parts) {
      for (let r = 0; r < p.rows; r++) {
        const row = Array.from(p.ids.subarray(r * p.length, (r + 1) * p.length));
        const len = row.findIndex((v) => v === 0);
        rows.push(row.slice(0, len < 0 ? p.length : len));
      }
      // padded only to the bucket's longest: some row fills the whole width
      expect(Math.max(...rows.slice(-p.rows).map((r) => r.length))).toBe(p.length);
    }
    const lengths = rows.map((r) => r.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
    // the same captions, each with its own owner
    const expected = captions.map((c, j) => `${owner[j]}:${tokenized[c].join(',')}`).sort();
    expect(rows.map((r, j) => `${permuted[j]}:${r.join(',')}`).sort()).toEqual(expected);
  });

  it('gives the same loss and gradients as one padded batch', () => {
    const x = tf.randomUniform([12, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const vars = [...model.variables.values()];
    const lossGrads = (buckets: number) => {
      const { parts, owner: o } = stackIdsBucketed(tokenized, captions, owner, buckets);
      const ids = parts.map((p) => tf.tensor2d(p.ids, [p.rows, p.length], 'int32'));
      const { value, grads } = tf.variableGrads(
        () => multiPositiveInfoNce(model.imageTower(x), textTowerBucketed(model, ids), o, model.logitScale()),
        vars,
      );
      const out = { loss: value.dataSync()[0], grads: Object.values(grads).map((g) => Array.from(g.dataSync() as Float32Array)) };
      tf.dispose([value, ...Object.values(grads), ...ids]);
      return out;
    };
    const one = lossGrads(1);
    // the single bucket is exactly the classic padded batch
    expect(stackIdsBucketed(tokenized, captions, owner, 1).parts[0].length).toBe(stackIds(tokenized, captions).length);
    for (const k of [2, 4, 24]) {
      const b = lossGrads(k);
      expect(Math.abs(b.loss - one.loss)).toBeLessThan(1e-5);
      b.grads.forEach((g, i) => g.forEach((v, j) => expect(Math.abs(v - one.grads[i][j])).toBeLessThan(1e-5 + 1e-3 * Math.abs(one.grads[i][j]))));
    }
    x.dispose();
  });

  it('rejects a bad bucket count', () => {
    expect(() => stackIdsBucketed(tokenized, captions, owner, 0)).toThrow(/buckets must be a positive integer/);
  });
});
