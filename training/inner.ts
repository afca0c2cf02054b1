/**
 * Training-time inner maximisation (the "max" of min-max adversarial training).
 *
 * Every loop here differentiates w.r.t. its INPUT only (inputGrad below: engine/ops withoutWeightGrads around the
 * lean backward of ./lean-grads.ts, whose peak memory is about half of tf.valueAndGrad's, same values): no weight
 * gradient is computed and no variable is touched. Randomness comes from the
 * Rng passed in, which the trainer seeds per (seed, step), so a resumed run replays the same perturbations.
 *
 * - pgdImages: L-inf PGD on pixels in [0,1], uniform random start in the ball, sign steps, projection onto the
 *   ball and the pixel range after every step; returns the LAST iterate (standard adversarial training; the
 *   evaluation attacks keep the best iterate instead).
 * - pgdTokenEmbeddings: the cheap text alternative: PGD on the token(+position) embeddings of the captions,
 *   L2 ball per token of radius relEps * (mean token-embedding norm of the batch), normalised-gradient steps,
 *   padding positions never perturbed. Returns the perturbation (added to embedTokens(ids) in the outer loss).
 * - substituteWords: the faithful text attack: greedy WordNet word substitution (the attack package's
 *   greedyWordSearch + WordNetSynonymSwap; 1 word; stop words skipped; the candidates of all captions scored in
 *   batched textTower calls per round) lowering each caption's similarity to its (clean) paired image.
 */
import { tf } from '../src/engine/tf.js';
import { withoutWeightGrads } from '../src/engine/ops.js';
import { takeData } from '../src/engine/read.js';
import { leanValueAndGrad } from './lean-grads.js';
import { labelPreserving, type LabelLexicon } from '../src/attacks/constraints/labels.js';
import { defaultTextConstraints, embedImageRows, embedTextRows, greedyWordSearch, QueryBudget, WordNetSynonymSwap } from '../src/attacks/index.js';
import { itemRng } from '../src/attacks/util/seed.js';
import type { DualEncoder, Tokenizer } from '../src/model/types.js';
import type { Rng } from '../src/util/rng.js';

/** d objective / d x only (the PGD step primitive); the caller owns both tensors */
function inputGrad<X extends tf.Tensor>(f: (x: X) => tf.Scalar, x: X): { value: tf.Scalar; grad: X } {
  return withoutWeightGrads(() => leanValueAndGrad(f, x));
}

export interface PixelBudget {
  /** pixel units [0,1] */
  eps: number;
  stepSize: number;
  steps: number;
}

export function pgdImages(x0: tf.Tensor4D, objective: (x: tf.Tensor4D) => tf.Scalar, b: PixelBudget, rng: Rng): tf.Tensor4D {
  if (b.steps === 0 || b.eps === 0) return x0.clone();
  const noise = new Float32Array(x0.size);
  for (let i = 0; i < noise.length; i++) noise[i] = rng.uniform(-b.eps, b.eps);
  let x = tf.tidy(() => tf.clipByValue(tf.add(x0, tf.tensor(noise, x0.shape)), 0, 1) as tf.Tensor4D);
  const lo = tf.tidy(() => tf.sub(x0, b.eps));
  const hi = tf.tidy(() => tf.add(x0, b.eps));
  try {
    for (let t = 0; t < b.steps; t++) {
      const next = tf.tidy(() => {
        const { grad } = inputGrad(objective, x);
        const stepped = tf.add(x, tf.mul(tf.sign(grad), b.stepSize));
        return tf.clipByValue(tf.minimum(tf.maximum(stepped, lo), hi), 0, 1) as tf.Tensor4D;
      });
      x.dispose();
      x = next;
    }
  } catch (e) {
    x.dispose();
    throw e;
  } finally {
    lo.dispose();
    hi.dispose();
  }
  return x;
}

export interface EmbeddingBudget {
  /** L2 radius per token relative to the batch's mean token-embedding norm */
  relEps: number;
  steps: number;
}

export async function pgdTokenEmbeddings(
  model: DualEncoder,
  ids: tf.Tensor2D,
  objective: (textEmb: tf.Tensor2D) => tf.Scalar,
  b: EmbeddingBudget,
): Promise<tf.Tensor3D> {
  const e0 = tf.tidy(() => model.embedTokens(ids));
  const [B, L, W] = e0.shape;
  const mask = tf.tidy(() => tf.reshape(tf.cast(tf.notEqual(ids, 0), 'float32'), [B, L, 1]) as tf.Tensor3D);
  let delta: tf.Tensor3D = tf.zeros([B, L, W]);
  if (b.steps === 0 || b.relEps === 0) {
    e0.dispose();
    mask.dispose();
    return delta;
  }
  // one host read per call (not per step), with await: webgpu in Node has no synchronous read. The radius is a
  // host number so that the step size below is computed in float64, as it always was (bit-identical results).
  let radius: number;
  try {
    radius = (
      await takeData(
        tf.tidy(() => {
          const norms = tf.mul(tf.sqrt(tf.sum(tf.square(e0), 2, true)), mask);
          return tf.mul(tf.div(tf.sum(norms), tf.maximum(tf.sum(mask), 1)), b.relEps);
        }),
      )
    )[0];
  } catch (e) {
    tf.dispose([e0, mask, delta]);
    throw e;
  }
  const alpha = (2.5 * radius) / b.steps;
  try {
    for (let t = 0; t < b.steps; t++) {
      const next = tf.tidy(() => {
        const { grad } = inputGrad((d: tf.Tensor3D) => objective(model.textTowerFromEmbeddings(tf.add(e0, tf.mul(d, mask)) as tf.Tensor3D, ids)), delta);
        const gn = tf.maximum(tf.sqrt(tf.sum(tf.square(grad), 2, true)), 1e-12);
        const stepped = tf.mul(tf.add(delta, tf.mul(tf.div(grad, gn), alpha)), mask);
        const n = tf.maximum(tf.sqrt(tf.sum(tf.square(stepped), 2, true)), 1e-12);
        return tf.mul(stepped, tf.minimum(1, tf.div(radius, n))) as tf.Tensor3D;
      });
      delta.dispose();
      delta = next;
    }
  } finally {
    e0.dispose();
    mask.dispose();
  }
  return delta;
}

export interface SubstitutionOptions {
  words: number;
  candidates: number;
  /** word visiting order: 'random' (no importance queries; the training default) or 'delete' (PWWS importance) */
  wir: 'random' | 'delete';
  seed: number;
  /** texts per textTower call (the tower is fastest at ~128 on wasm) */
  embedBatch?: number;
  /** substitutes may not change a label of this closed vocabulary */
  labels?: LabelLexicon;
}

const swaps = new Map<number, WordNetSynonymSwap>();

/**
 * Greedy WordNet substitution (src/attacks greedyWordSearch + WordNetSynonymSwap, stop words skipped, `words`
 * words per caption) maximising 1 - cos(caption, its clean paired image). Forward passes only.
 */
export async function substituteWords(
  model: DualEncoder,
  tokenizer: Tokenizer,
  pixels: Float32Array,
  size: number,
  captions: readonly string[],
  owner: Int32Array,
  o: SubstitutionOptions,
): Promise<{ texts: string[]; wordsChanged: number }> {
  if (o.words === 0 || captions.length === 0) return { texts: captions.slice(), wordsChanged: 0 };
  const E = model.config.embedDim;
  const nImages = pixels.length / (size * size * 3);
  const img = await embedImageRows(model, pixels, nImages, size);
  const batch = o.embedBatch ?? 128;
  let swap = swaps.get(o.candidates);
  if (!swap) swaps.set(o.candidates, (swap = new WordNetSynonymSwap({ maxCandidates: o.candidates })));
  const out = await greedyWordSearch(captions, {
    transformation: swap,
    constraints: o.labels ? [...defaultTextConstraints(o.words), labelPreserving(o.labels)] : defaultTextConstraints(o.words),
    scorer: {
      score: async (texts, items) => {
        const emb = await embedTextRows(model, tokenizer, texts, batch);
        return {
          score: items.map((it, r) => {
            let d = 0;
            const a = r * E;
            const b = owner[it] * E;
            for (let k = 0; k < E; k++) d += emb[a + k] * img[b + k];
            return 1 - d;
          }),
        };
      },
    },
    maxWordsChanged: o.words,
    wir: o.wir,
    budget: new QueryBudget(Number.MAX_SAFE_INTEGER, captions.length),
    rngs: captions.map((_, i) => itemRng(o.seed, 3, i)),
  });
  return { texts: out.texts, wordsChanged: out.wordsChanged.reduce((a, b) => a + b, 0) };
}
