/**
 * Fast op formulations for tfjs, tuned for the wasm backend (see STACK.md) and correct on every backend.
 *
 * Why: on wasm, matMul with transposeA/transposeB or a batch dimension > 1 skips XNNPACK and runs a scalar
 * loop (~2 GFLOP/s instead of ~40); every default matMul gradient uses those flags, tf.sum over axis 0 is slow,
 * and Pow/Tanh are slow. So:
 * - linear: tf.customGrad whose backward is plain 2-D matmuls of explicitly transposed operands
 *   (dX = dy @ T(W), dW = T(x) @ dy), the bias gradient as ones[1,M] @ dy.
 * - layerNorm: hand-written backward (row statistics recomputed from saved tensors, column sums as matmuls).
 * - gelu: the tanh-approximation GELU written as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
 *   (0.5 (1 + tanh u) = sigmoid(2u)), with a hand-written backward; no Pow/Tanh.
 * - colSum: sum over axis 0 as ones[1,M] @ x.
 * - transpose2d: for tall matrices, the 2-D transpose done as a 3-D transpose ([M/c, c, N] -> perm [2,0,1]),
 *   which the wasm Transpose kernel does faster than the plain 2-D case.
 * - attention: multi-head self-attention over [B*T, D] tokens with an optional key-padding mask, with a
 *   hand-written backward for the softmax(QK^T)V core.
 *
 * Every customGrad passes the forward tensors its backward needs through save(): capturing them in the closure
 * crashes on wasm (the engine frees them), although the cpu backend hides the bug.
 *
 * All functions take and return tensors owned by the caller; wrap calls in tf.tidy.
 */
import * as tf from './tf.js';

type T2 = tf.Tensor2D;
/** the argument type of tf.customGrad (not exported by name from tfjs-core) */
export type CustomGradFn = Parameters<typeof tf.customGrad>[0];

let weightGradsOff = 0;

/**
 * Run f (which computes gradients, e.g. `tf.grad(loss)(x)`) with the weight gradients of Manyfold's fast ops
 * switched off: their backward passes return zeros for weights/biases/gains instead of computing them. Use it
 * for input-only gradients (white-box attacks: one PGD step needs d loss / d pixels only), where the weight
 * gradients would be discarded anyway; it saves the dW matmuls (about a third of the backward FLOPs).
 * Nestable. Gradients w.r.t. anything other than the inputs of these ops are unaffected.
 */
export function withoutWeightGrads<R>(f: () => R): R {
  weightGradsOff++;
  try {
    return f();
  } finally {
    weightGradsOff--;
  }
}

/** true inside withoutWeightGrads */
export function weightGradsDisabled(): boolean {
  return weightGradsOff > 0;
}

/**
 * Gradient of the scalar f(x) w.r.t. x only (no weight gradients computed): the PGD step primitive.
 * Returns the value too; the caller owns both tensors.
 */
export function inputGrad<X extends tf.Tensor>(f: (x: X) => tf.Scalar, x: X): { value: tf.Scalar; grad: X } {
  return withoutWeightGrads(() => {
    const { value, grad } = tf.valueAndGrad(f)(x);
    return { value, grad: grad as X };
  });
}

const onesCache = new Map<string, tf.Tensor2D>();
/** A cached constant ones matrix (kept across tidy scopes; never disposed by callers). */
function ones2d(rows: number, cols: number): tf.Tensor2D {
  const key = `${tf.getBackend()}:${rows}x${cols}`;
  let t = onesCache.get(key);
  if (!t || t.isDisposed) {
    t = tf.keep(tf.ones([rows, cols]) as tf.Tensor2D);
    onesCache.set(key, t);
  }
  return t;
}

/** Release cached constants (tests that check tensor counts call this first, or ignore them). */
export function disposeOpCaches(): void {
  for (const t of onesCache.values()) if (!t.isDisposed) t.dispose();
  onesCache.clear();
}

/** Row block used by the fast transpose; 64 measured best on wasm for the shapes used here. */
const TRANSPOSE_BLOCK = 64;

/** 2-D transpose. For M divisible by the block (and M >= 2 blocks) it goes through a 3-D transpose. */
export function transpose2d(x: T2): T2 {
  const [m, n] = x.shape;
  if (tf.getBackend() === 'wasm' && m % TRANSPOSE_BLOCK === 0 && m >= 2 * TRANSPOSE_BLOCK) {
    return tf.tidy(() => {
      const x3 = tf.reshape(x, [m / TRANSPOSE_BLOCK, TRANSPOSE_BLOCK, n]);
      return tf.reshape(tf.transpose(x3, [2, 0, 1]), [n, m]) as T2;
    });
  }
  return tf.transpose(x) as T2;
}

/** sum over axis 0 of a 2-D tensor as a matmul: ones[1,M] @ x -> [N] */
export function colSum(x: T2): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.matMul(ones2d(1, x.shape[0]), x), [x.shape[1]]) as tf.Tensor1D);
}

/** dW = T(x) @ dy with the explicit transpose (no matmul flags). */
function matTN(x: T2, dy: T2): T2 {
  return tf.tidy(() => tf.matMul(transpose2d(x), dy));
}

/** dX = dy @ T(W) with the explicit transpose (no matmul flags). */
function matNT(dy: T2, w: T2): T2 {
  return tf.tidy(() => tf.matMul(dy, transpose2d(w)));
}

const linearBias = tf.customGrad(((x: T2, w: T2, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  const value = tf.add(tf.matMul(x, w), b) as T2;
  return {
    value,
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as T2[];
      if (weightGradsOff > 0) return [matNT(dy, ws), tf.zerosLike(ws), tf.zeros([ws.shape[1]])];
      return [matNT(dy, ws), matTN(xs, dy), colSum(dy)];
    },
  };
}) as unknown as CustomGradFn) as (x: T2, w: T2, b: tf.Tensor1D) => T2;

const linearNoBias = tf.customGrad(((x: T2, w: T2, save: tf.GradSaveFunc) => {
  save([x, w]);
  const value = tf.matMul(x, w) as T2;
  return {
    value,
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as T2[];
      if (weightGradsOff > 0) return [matNT(dy, ws), tf.zerosLike(ws)];
      return [matNT(dy, ws), matTN(xs, dy)];
    },
  };
}) as unknown as CustomGradFn) as (x: T2, w: T2) => T2;

/** y = x @ W + b for x [M,K], W [K,N], b [N] (optional), with the fast backward. */
export function linear(x: T2, w: T2, b?: tf.Tensor1D | null): T2 {
  if (x.rank !== 2 || w.rank !== 2) throw new Error(`linear: expected 2-D x and W, got [${x.shape}] [${w.shape}]`);
  return b ? linearBias(x, w, b) : linearNoBias(x, w);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C1 = 2 * SQRT_2_OVER_PI; // 2u = x * (C1 + C2 x^2)
const GELU_C2 = 2 * SQRT_2_OVER_PI * 0.044715;

/** GELU (tanh approximation) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), with a fused backward. */
export const gelu = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const x2 = tf.square(x);
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, GELU_C2), GELU_C1)));
  const y = tf.mul(x, s);
  save([x2, s, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [x2s, ss, ys] = saved;
      // dy/dx = s + x s (1 - s) d(2u)/dx = s + y (1 - s) (C1 + 3 C2 x^2)
      const d2u = tf.add(tf.mul(x2s, 3 * GELU_C2), GELU_C1);
      const g = tf.add(ss, tf.mul(tf.mul(ys, tf.sub(1, ss)), d2u));
      return [tf.mul(dy, g)];
    },
  };
}) as unknown as CustomGradFn) as <R extends tf.Tensor>(x: R) => R;

const LN_EPS = 1e-5;

const layerNormImpl = tf.customGrad(((x: T2, g: tf.Tensor1D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  const mu = tf.mean(x, 1, true);
  const xc = tf.sub(x, mu);
  const variance = tf.mean(tf.square(xc), 1, true);
  const rstd = tf.rsqrt(tf.add(variance, LN_EPS));
  const xhat = tf.mul(xc, rstd) as T2;
  const y = tf.add(tf.mul(xhat, g), b) as T2;
  save([xhat, rstd, g]);
  return {
    value: y,
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xh, rs, gs] = saved as [T2, tf.Tensor2D, tf.Tensor1D];
      const off = weightGradsOff > 0;
      const dg = off ? tf.zerosLike(gs) : colSum(tf.mul(dy, xh) as T2);
      const db = off ? tf.zerosLike(gs) : colSum(dy);
      const dxhat = tf.mul(dy, gs);
      // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      const m1 = tf.mean(dxhat, 1, true);
      const m2 = tf.mean(tf.mul(dxhat, xh), 1, true);
      const dx = tf.mul(tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)), rs);
      return [dx, dg, db];
    },
  };
}) as unknown as CustomGradFn) as (x: T2, g: tf.Tensor1D, b: tf.Tensor1D) => T2;

/** LayerNorm over the last axis of x [M,D] (eps 1e-5) with gain g [D] and bias b [D]; hand-written backward. */
export function layerNorm(x: T2, g: tf.Tensor1D, b: tf.Tensor1D): T2 {
  if (x.rank !== 2) throw new Error(`layerNorm: expected 2-D x, got [${x.shape}]`);
  return layerNormImpl(x, g, b);
}

/** row-wise L2 normalisation of [M,D] (eps inside the sqrt, so the zero vector maps to zero, not NaN). */
export function l2Normalize(x: T2, eps = 1e-12): T2 {
  return tf.tidy(() => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), 1, true), eps))) as T2);
}

/** batched a @ b for a [G,M,K], b [G,K,N] without matmul flags. */
function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return tf.matMul(a, b);
}

function t3(x: tf.Tensor3D): tf.Tensor3D {
  return tf.transpose(x, [0, 2, 1]);
}

/**
 * softmax(q kT + mask) v for q, v: [G,T,dh] (q already scaled), kT: [G,dh,T] (k transposed), mask: additive,
 * broadcastable to [G,T,T] (e.g. [G,1,T]). Hand-written backward; batched matmuls without transpose flags.
 */
const attentionCoreMasked = tf.customGrad(((
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor3D,
  save: tf.GradSaveFunc,
) => {
  const s = tf.add(bmm(q, k), mask);
  const p = tf.softmax(s) as tf.Tensor3D;
  const o = bmm(p, v);
  save([q, k, v, p]);
  return {
    value: o,
    gradFunc: (dout: tf.Tensor3D, saved: tf.Tensor[]) => {
      const [qs, ks, vs, ps] = saved as tf.Tensor3D[];
      const [dq, dk, dv] = attentionBackward(dout, qs, ks, vs, ps);
      return [dq, dk, dv, tf.zerosLike(mask)];
    },
  };
}) as unknown as CustomGradFn) as (
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  mask: tf.Tensor3D,
) => tf.Tensor3D;

const attentionCoreUnmasked = tf.customGrad(((
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  save: tf.GradSaveFunc,
) => {
  const p = tf.softmax(bmm(q, k)) as tf.Tensor3D;
  const o = bmm(p, v);
  save([q, k, v, p]);
  return {
    value: o,
    gradFunc: (dout: tf.Tensor3D, saved: tf.Tensor[]) => {
      const [qs, ks, vs, ps] = saved as tf.Tensor3D[];
      return attentionBackward(dout, qs, ks, vs, ps);
    },
  };
}) as unknown as CustomGradFn) as (q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D) => tf.Tensor3D;

/** gradients of o = softmax(q kT) v w.r.t. q [G,T,dh], kT [G,dh,T], v [G,T,dh], given p = softmax(q kT) */
function attentionBackward(
  dout: tf.Tensor3D,
  q: tf.Tensor3D,
  kT: tf.Tensor3D,
  v: tf.Tensor3D,
  p: tf.Tensor3D,
): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] {
  const dv = bmm(t3(p), dout);
  const dp = bmm(dout, t3(v));
  // softmax backward: ds = p * (dp - sum(dp * p, -1))
  const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))) as tf.Tensor3D;
  const dq = bmm(ds, t3(kT));
  const dkT = bmm(t3(q), ds); // d(kT) = q^T ds : [G,dh,T]
  return [dq, dkT, dv];
}

export interface AttentionParams {
  qkvW: T2; // [D, 3D]
  qkvB: tf.Tensor1D; // [3D]
  projW: T2; // [D, D]
  projB: tf.Tensor1D; // [D]
}

/**
 * Multi-head self-attention over x: [B*T, D] (tokens of B sequences of length T, row-major).
 * keyMask: additive mask [B, T] (0 keep, large negative for padding keys) or null.
 * Returns [B*T, D] (after the output projection).
 */
export function attention(
  x: T2,
  p: AttentionParams,
  batch: number,
  seqLen: number,
  heads: number,
  keyMask: tf.Tensor2D | null,
): T2 {
  return tf.tidy(() => {
    const d = x.shape[1];
    if (d % heads !== 0) throw new Error(`attention: width ${d} not divisible by heads ${heads}`);
    const dh = d / heads;
    const g = batch * heads;
    const qkv = linear(x, p.qkvW, p.qkvB); // [B*T, 3D], columns ordered (q|k|v, head, dh)
    // [B*T, 3, D] -> [3, B*T, D] (3-D transpose), then contiguous row slices (no SplitV/Unpack), then one
    // 4-D transpose per operand; k goes straight to k^T [B, H, dh, T]. Rank-5 transposes are ~30x slower on wasm.
    const n = batch * seqLen;
    const qkv3 = tf.reshape(tf.transpose(tf.reshape(qkv, [n, 3, d]), [1, 0, 2]), [3 * n, d]);
    const [q2, k2, v2] = [0, 1, 2].map((i) => tf.slice(qkv3, [i * n, 0], [n, d]));
    const toHeads = (t: tf.Tensor, perm: number[], shape: [number, number, number]) =>
      tf.reshape(tf.transpose(tf.reshape(t, [batch, seqLen, heads, dh]), perm), shape) as tf.Tensor3D;
    const q = toHeads(tf.mul(q2, 1 / Math.sqrt(dh)), [0, 2, 1, 3], [g, seqLen, dh]);
    const kT = toHeads(k2, [0, 2, 3, 1], [g, dh, seqLen]);
    const v = toHeads(v2, [0, 2, 1, 3], [g, seqLen, dh]);
    let o: tf.Tensor3D;
    if (keyMask) {
      // [B, T] -> [B, H, 1, T] -> [G, 1, T]
      const m = tf.reshape(tf.tile(tf.reshape(keyMask, [batch, 1, seqLen]), [1, heads, 1]), [g, 1, seqLen]);
      o = attentionCoreMasked(q, kT, v, m as tf.Tensor3D);
    } else {
      o = attentionCoreUnmasked(q, kT, v);
    }
    // [B, H, T, dh] -> [B, T, H, dh] -> [B*T, D]
    const merged = tf.reshape(tf.transpose(tf.reshape(o, [batch, heads, seqLen, dh]), [0, 2, 1, 3]), [
      batch * seqLen,
      d,
    ]) as T2;
    return linear(merged, p.projW, p.projB);
  });
}
