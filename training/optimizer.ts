import { tf } from '../src/engine/tf.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay: number;
  /** decide per variable whether decoupled weight decay applies (CLIP/open_clip: not to gains, biases, scale) */
  decays?: (name: string, v: tf.Variable) => boolean;
}

/** Rank >= 2 tensors are weights; 1-D gains/biases and the scalar logit scale are not decayed. */
export const decayMatricesOnly = (_name: string, v: tf.Variable): boolean => v.rank >= 2;

/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay and bias correction, written out so that its state
 * can be checkpointed by name and restored bit-exactly on resume (tfjs' AdamOptimizer keeps it private).
 */
let nextOptimizerId = 0;

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  private readonly decays: (name: string, v: tf.Variable) => boolean;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  step = 0;

  constructor(private readonly variables: Map<string, tf.Variable>, opts: AdamWOptions) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.98;
    this.epsilon = opts.epsilon ?? 1e-6;
    this.weightDecay = opts.weightDecay;
    this.decays = opts.decays ?? decayMatricesOnly;
    const uid = nextOptimizerId++;
    for (const [name, variable] of variables) {
      // tf.variable shares the initial tensor's buffer: dispose the initial tensor so only the variable counts
      const zeros = tf.zerosLike(variable);
      this.m.set(name, tf.variable(zeros, false, `adamw.m.${name}.${uid}`));
      this.v.set(name, tf.variable(zeros, false, `adamw.v.${name}.${uid}`));
      zeros.dispose();
    }
  }

  /** Applies one update. grads are by variable name; missing grads (unused variables) are skipped. */
  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const t = this.step;
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2 = 1 - Math.pow(this.beta2, t);
    // one tidy per variable: the temporaries of an update (about 6 tensors of the variable's size) are freed before
    // the next variable's, so the optimizer's transient memory is that of the largest variable, not of the model
    for (const [name, variable] of this.variables) {
      const g = grads[name];
      if (!g) continue;
      tf.tidy(() => {
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const mNew = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNew = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNew);
        v.assign(vNew);
        const update = tf.div(tf.div(mNew, bc1), tf.add(tf.sqrt(tf.div(vNew, bc2)), this.epsilon));
        let next = tf.sub(variable, tf.mul(update, lr));
        if (this.weightDecay > 0 && this.decays(name, variable)) {
          next = tf.sub(next, tf.mul(variable, lr * this.weightDecay));
        }
        variable.assign(next);
      });
    }
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
  }
}

/** The global L2 norm of the gradients, as a tensor (so a caller can download it with other values at once). */
export function globalNorm(grads: Record<string, tf.Tensor>): tf.Scalar {
  const names = Object.keys(grads);
  // per-variable squared sums in their own tidy (one gradient-sized temporary at a time), added in the same order
  const squares = names.map((n) => tf.tidy(() => tf.sum(tf.square(grads[n]))));
  const norm = tf.tidy(() => tf.sqrt(tf.addN(squares))) as tf.Scalar;
  for (const t of squares) t.dispose();
  return norm;
}

/**
 * Scales gradients in place so that their global L2 norm is at most maxNorm, given the norm (globalNorm) already
 * read back as `value` (the trainer downloads it in one batch with the step's losses: no extra GPU->CPU sync);
 * returns it.
 */
export function clipToNorm(grads: Record<string, tf.Tensor>, value: number, maxNorm: number): number {
  const names = Object.keys(grads);
  if (value > maxNorm && Number.isFinite(value)) {
    const scale = maxNorm / (value + 1e-12);
    for (const n of names) {
      const scaled = tf.mul(grads[n], scale);
      grads[n].dispose();
      grads[n] = scaled;
    }
  }
  return value;
}
