/**
 * Test fixtures: a small fake DualEncoder built from tf.variable's (a linear image map and a bag-of-embeddings
 * text map, both L2-normalised) plus the real tokenizer, and a deterministic image/caption batch.
 */
import { tf } from '../../src/engine/tf.js';
import type { DualEncoder, ModelConfig } from '../../src/model/types.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { Rng } from '../../src/util/rng.js';
import { SAMPLE_CAPTIONS } from '../fixtures/captions.js';

export const CAPTIONS = [...SAMPLE_CAPTIONS, 'a happy child holds a bright yellow balloon', 'three small green squares form a straight line'];

export function fakeEncoder(opts: { size?: number; dim?: number; vocabSize: number; maxLen: number; seed?: number }): DualEncoder {
  const S = opts.size ?? 8;
  const E = opts.dim ?? 16;
  const D = S * S * 3;
  const rng = new Rng(opts.seed ?? 7);
  const rand = (n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
  const W = tf.variable(tf.tensor2d(rand(D * E, 1 / Math.sqrt(D)), [D, E]), true, `fake${rng.seed()}/W`);
  const tok = tf.variable(tf.tensor2d(rand(opts.vocabSize * E, 1), [opts.vocabSize, E]), true, `fake${rng.seed()}/tok`);
  const P = tf.variable(tf.tensor2d(rand(E * E, 1 / Math.sqrt(E)), [E, E]), true, `fake${rng.seed()}/P`);
  const pos = tf.variable(tf.zeros([opts.maxLen, E]), true, `fake${rng.seed()}/pos`);
  const config: ModelConfig = {
    preset: 'fake',
    embedDim: E,
    image: { size: S, patch: S, width: E, depth: 0, heads: 1, mlpRatio: 1 },
    text: { width: E, depth: 0, heads: 1, mlpRatio: 1, maxLen: opts.maxLen, vocabSize: opts.vocabSize },
    initLogitScale: Math.log(1 / 0.07),
  };
  const norm = (x: tf.Tensor2D) => tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12)) as tf.Tensor2D;
  const fromEmb = (emb: tf.Tensor3D, ids: tf.Tensor2D) =>
    tf.tidy(() => {
      const mask = tf.expandDims(tf.cast(tf.notEqual(ids, 0), 'float32'), 2);
      const mean = tf.div(tf.sum(tf.mul(emb, mask), 1), tf.maximum(tf.sum(mask, 1), 1)) as tf.Tensor2D;
      return norm(tf.matMul(mean, P));
    });
  const variables = new Map<string, tf.Variable>([
    ['W', W],
    ['tok', tok],
    ['P', P],
    ['pos', pos],
  ]);
  return {
    config,
    variables,
    imageTower: (x) => tf.tidy(() => norm(tf.matMul(tf.reshape(tf.sub(x, 0.5), [x.shape[0], D]), W))),
    embedTokens: (ids) => tf.tidy(() => tf.add(tf.gather(tok, ids), pos.slice([0, 0], [ids.shape[1], E])) as tf.Tensor3D),
    textTowerFromEmbeddings: fromEmb,
    textTower(ids) {
      return tf.tidy(() => fromEmb(this.embedTokens(ids), ids));
    },
    logitScale: () => tf.scalar(1 / 0.07),
    dispose: () => variables.forEach((v) => v.dispose()),
  };
}

export function fixture(opts: { size?: number; dim?: number; nImages?: number; seed?: number } = {}) {
  const size = opts.size ?? 8;
  const nImages = opts.nImages ?? 4;
  const tokenizer = buildTokenizer(CAPTIONS, { maxLen: 16 });
  const encoder = fakeEncoder({ size, dim: opts.dim, vocabSize: tokenizer.vocabSize, maxLen: tokenizer.maxLen, seed: opts.seed });
  const rng = new Rng(123);
  const images = Float32Array.from({ length: nImages * size * size * 3 }, () => rng.next());
  // two captions per image
  const captions = Array.from({ length: nImages * 2 }, (_, i) => CAPTIONS[i % CAPTIONS.length]);
  const captionToImage = Array.from({ length: nImages * 2 }, (_, i) => Math.floor(i / 2));
  return { size, tokenizer, encoder, images, captions, captionToImage, nImages };
}
