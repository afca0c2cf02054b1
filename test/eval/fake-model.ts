/**
 * A tiny stand-in DualEncoder for tests of the artifact, encoder and eval code: linear towers over tf.variables
 * (mean-pooled token embeddings for text, a linear map of the flattened pixels for images), L2-normalised.
 */
import { tf } from '../../src/engine/tf.js';
import type { DualEncoder, ModelConfig } from '../../src/model/types.js';

export function fakeConfig(vocabSize: number, maxLen = 12, size = 4, embedDim = 8): ModelConfig {
  return {
    preset: 'fake',
    embedDim,
    image: { size, patch: 2, width: 8, depth: 1, heads: 1, mlpRatio: 1 },
    text: { width: 6, depth: 1, heads: 1, mlpRatio: 1, maxLen, vocabSize },
    initLogitScale: Math.log(1 / 0.07),
  };
}

export function createFakeDualEncoder(config: ModelConfig, seed: number): DualEncoder {
  const { embedDim: E } = config;
  const W = config.text.width;
  const P = config.image.size * config.image.size * 3;
  const variables = new Map<string, tf.Variable>();
  const add = (name: string, shape: number[], s: number): tf.Variable => {
    const init = tf.randomNormal(shape, 0, 0.5, 'float32', seed * 7919 + s);
    const v = tf.variable(init, true, `${name}_${seed}_${Math.random()}`);
    init.dispose(); // tf.variable copies the reference count, not ownership
    variables.set(name, v);
    return v;
  };
  const tokEmb = add('text.token_embedding', [config.text.vocabSize, W], 1);
  const posEmb = add('text.position_embedding', [config.text.maxLen, W], 2);
  const textProj = add('text.proj', [W, E], 3);
  const imgProj = add('image.proj', [P, E], 4);
  const imgBias = add('image.bias', [E], 5);
  const logitInit = tf.scalar(config.initLogitScale);
  const logit = tf.variable(logitInit, true, `logit_${seed}_${Math.random()}`);
  logitInit.dispose();
  variables.set('logit_scale', logit);

  const normalize = (x: tf.Tensor2D): tf.Tensor2D =>
    tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D;

  const embedTokens = (ids: tf.Tensor2D): tf.Tensor3D =>
    tf.tidy(() => {
      const L = ids.shape[1];
      return tf.add(tf.gather(tokEmb, ids), tf.expandDims(tf.slice(posEmb, [0, 0], [L, W]), 0)) as tf.Tensor3D;
    });
  const fromEmb = (emb: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor2D =>
    tf.tidy(() => {
      const mask = tf.expandDims(tf.cast(tf.notEqual(ids, 0), 'float32'), 2);
      const pooled = tf.div(tf.sum(tf.mul(emb, mask), 1), tf.maximum(tf.sum(mask, 1), 1)) as tf.Tensor2D;
      return normalize(tf.matMul(pooled, textProj));
    });

  return {
    config,
    variables,
    imageTower: (x) => tf.tidy(() => normalize(tf.add(tf.matMul(tf.reshape(x, [x.shape[0], P]) as tf.Tensor2D, imgProj), imgBias))),
    textTower: (ids) => tf.tidy(() => fromEmb(embedTokens(ids), ids)),
    embedTokens,
    textTowerFromEmbeddings: fromEmb,
    logitScale: () => tf.tidy(() => tf.minimum(tf.exp(logit), 100) as tf.Scalar),
    dispose: () => {
      for (const v of variables.values()) v.dispose();
    },
  };
}
