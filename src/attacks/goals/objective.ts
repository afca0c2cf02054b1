/**
 * The embedding objective maximised by white-box searches (PGD's inner loop, the text searches' candidate
 * scores). For a query item i with adversarial embedding e (L2-normalised):
 *
 *   J_i(e) = w_clean * (1 - e . c_i)  +  w_paired * mean_{j in S_i} (1 - e . p_j)
 *
 * where c_i is the clean embedding of the query itself ("move the embedding away") and S_i its paired targets
 * in the other modality (an image's captions, or a caption's image: "lower the similarity to the paired item").
 * Co-Attack's image step is w_clean = 1, w_paired = 3 against the adversarial captions; SGA's is w_clean = 0,
 * w_paired = 1 against all of an image's adversarial captions (averaged over rescaled copies).
 */
import { tf } from '../../engine/tf.js';
import { rowDot } from '../util/embed.js';

export interface ObjectiveWeights {
  clean: number;
  paired: number;
}

export interface EmbeddingObjectiveSpec {
  weights: ObjectiveWeights;
  dim: number;
  /** clean embeddings of the queries, row-major [n, dim] (required when weights.clean != 0) */
  clean?: Float32Array;
  /** paired targets: their embeddings (row-major [m, dim]) and, per query, the target rows */
  targets?: { embeddings: Float32Array; sets: readonly (readonly number[])[] };
  /** number of queries (defaults to clean rows or targets.sets.length) */
  n?: number;
}

/** A per-chunk tensor form of the objective; owns constant tensors until dispose(). */
export interface TensorObjective {
  /**
   * emb: [r*m, E] where rows are r replicas (version-major: replica v occupies rows v*m .. v*m+m-1) of the m
   * chunk items; returns the objective per item averaged over replicas, [m]. Call inside tf.tidy.
   */
  loss(emb: tf.Tensor2D): tf.Tensor1D;
  dispose(): void;
}

export class EmbeddingObjective {
  readonly n: number;
  readonly dim: number;
  readonly weights: ObjectiveWeights;
  private readonly clean?: Float32Array;
  private readonly targets?: { embeddings: Float32Array; sets: readonly (readonly number[])[] };

  constructor(spec: EmbeddingObjectiveSpec) {
    this.dim = spec.dim;
    this.weights = { ...spec.weights };
    this.clean = spec.clean;
    this.targets = spec.targets;
    const n = spec.n ?? (spec.clean ? spec.clean.length / spec.dim : spec.targets?.sets.length);
    if (n === undefined || !Number.isInteger(n)) throw new Error('EmbeddingObjective: cannot infer the number of queries');
    this.n = n;
    if (this.weights.clean !== 0 && (!spec.clean || spec.clean.length !== n * spec.dim)) {
      throw new Error('EmbeddingObjective: weights.clean != 0 needs clean embeddings for every query');
    }
    if (spec.targets && spec.targets.sets.length !== n) throw new Error('EmbeddingObjective: targets.sets must have one entry per query');
  }

  describe(): string {
    return `${this.weights.clean}*(1-cos(adv,clean)) + ${this.weights.paired}*mean(1-cos(adv,paired))`;
  }

  /** J_item(e) for row `row` of the row-major [*, dim] matrix `emb` */
  score(emb: Float32Array, row: number, item: number): number {
    const { clean, paired } = this.weights;
    let j = 0;
    if (clean !== 0 && this.clean) j += clean * (1 - rowDot(emb, row, this.clean, item, this.dim));
    if (paired !== 0 && this.targets) {
      const set = this.targets.sets[item];
      if (set.length > 0) {
        let s = 0;
        for (const t of set) s += 1 - rowDot(emb, row, this.targets.embeddings, t, this.dim);
        j += (paired * s) / set.length;
      }
    }
    return j;
  }

  /** the tensor objective for the chunk of queries `items` (see TensorObjective) */
  forItems(items: readonly number[]): TensorObjective {
    const E = this.dim;
    const m = items.length;
    const { clean: wc, paired: wp } = this.weights;
    let C: tf.Tensor2D | null = null;
    if (wc !== 0 && this.clean) {
      const c = new Float32Array(m * E);
      items.forEach((it, r) => c.set(this.clean!.subarray(it * E, (it + 1) * E), r * E));
      C = tf.tensor2d(c, [m, E]);
    }
    let TT: tf.Tensor2D | null = null; // [E, U] targets transposed (plain matMul, no transpose flags)
    let P: tf.Tensor2D | null = null; // [m, U] weights 1/|S_i|
    let hasP: tf.Tensor1D | null = null; // [m] 1 when the item has targets
    if (wp !== 0 && this.targets) {
      const union = new Map<number, number>();
      for (const it of items) for (const t of this.targets.sets[it]) if (!union.has(t)) union.set(t, union.size);
      const U = union.size;
      if (U > 0) {
        const tt = new Float32Array(E * U);
        for (const [t, u] of union) for (let k = 0; k < E; k++) tt[k * U + u] = this.targets.embeddings[t * E + k];
        const p = new Float32Array(m * U);
        const h = new Float32Array(m);
        items.forEach((it, r) => {
          const set = this.targets!.sets[it];
          for (const t of set) p[r * U + union.get(t)!] += 1 / set.length;
          h[r] = set.length > 0 ? 1 : 0;
        });
        TT = tf.tensor2d(tt, [E, U]);
        P = tf.tensor2d(p, [m, U]);
        hasP = tf.tensor1d(h);
      }
    }
    return {
      loss: (emb: tf.Tensor2D): tf.Tensor1D => {
        const rows = emb.shape[0];
        if (rows % m !== 0) throw new Error(`objective: ${rows} embedding rows are not a multiple of ${m} items`);
        const r = rows / m;
        let total: tf.Tensor2D = tf.zeros([r, m]);
        if (C) {
          const cos = tf.sum(tf.mul(tf.reshape(emb, [r, m, E]), C), 2) as tf.Tensor2D;
          total = tf.add(total, tf.mul(tf.sub(1, cos), wc));
        }
        if (TT && P && hasP) {
          const U = TT.shape[1];
          const sims = tf.reshape(tf.matMul(emb, TT), [r, m, U]);
          const term = tf.sub(hasP, tf.sum(tf.mul(sims, P), 2)) as tf.Tensor2D;
          total = tf.add(total, tf.mul(term, wp));
        }
        return tf.mean(total, 0) as tf.Tensor1D;
      },
      dispose: () => {
        C?.dispose();
        TT?.dispose();
        P?.dispose();
        hasP?.dispose();
      },
    };
  }
}
