/**
 * Fast op formulations for tfjs, tuned for the wasm backend (see STACK.md) and correct on every backend.
 *
 * Why: on wasm, matMul with transposeA/transposeB or a batch dimension > 1 skips XNNPACK and runs a scalar
 * loop (~1.5 GFLOP/s instead of ~30-40); every default matMul gradient uses those flags, tf.sum over axis 0 is
 * slow, and Pow/Tanh are slow. So:
 * - customOp: a differentiable op with a hand-written backward whose per-input gradients are lazy (the tape only
 *   computes the gradients of inputs on the differentiated path). linear, layerNorm and the attention cores use it.
 * - linear: forward as one fused matmul+bias; backward as plain 2-D matmuls of explicitly transposed operands
 *   (dX = dy @ T(W), dW = T(x) @ dy), the bias gradient as ones[1,M] @ dy.
 * - layerNorm: hand-written backward (row statistics recomputed from saved tensors, column sums as matmuls).
 * - gelu: the tanh-approximation GELU written as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
 *   (0.5 (1 + tanh u) = sigmoid(2u)), with a hand-written backward; no Pow/Tanh.
 * - colSum: sum over axis 0 as ones[1,M] @ x.
 * - transpose2d: for tall matrices, the 2-D transpose done as a 3-D transpose ([M/c, c, N] -> perm [2,0,1]),
 *   which the wasm Transpose kernel does faster than the plain 2-D case.
 * - batchMatMul: batched small products as one depthwise convolution on wasm (XNNPACK grouped GEMM).
 * - attention: multi-head self-attention over [B*T, D] tokens with an optional key-padding mask; the
 *   softmax(QK^T)V core is one op (layout in and out, batchMatMul products, hand-written backward).
 *   attentionFirstToken: the same for the first token's query only (the image tower's last block).
 *
 * Every custom op passes the forward tensors its backward needs through save(): capturing them in the closure
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

/**
 * Number of live cached constant tensors (the ones matrices behind colSum, one per row count and backend).
 * Their number grows with the distinct shapes seen (e.g. text batches of varying length), so a test that checks
 * for leaks compares `tf.memory().numTensors - opCacheTensorCount()` across steps.
 */
export function opCacheTensorCount(): number {
  let n = 0;
  for (const t of onesCache.values()) if (!t.isDisposed) n++;
  return n;
}

/** Lazy gradient of one input: called only when that input is on the path being differentiated. */
type GradFn = () => tf.Tensor;

interface EngineWithKernelFunc {
  runKernelFunc(p: {
    forwardFunc: (backend: unknown, save: (ts: tf.Tensor[]) => void) => tf.Tensor;
    backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, GradFn>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor;
}

/**
 * A differentiable op with a hand-written backward whose per-input gradients are computed lazily. Unlike
 * tf.customGrad (which computes every input's gradient eagerly), the tape calls an input's gradient only when
 * that input leads to a differentiated tensor: weight gradients are skipped in input-only gradients (PGD), and the
 * input gradient of the first layer is skipped in a training step. `forward` runs untaped; it must pass every
 * tensor `backward` needs through `save` (saved tensors are kept until the backward pass; direct captures are
 * freed on wasm). This is the same engine entry point tf.customGrad uses.
 */
export function customOp(
  inputs: tf.Tensor[],
  forward: (save: (ts: tf.Tensor[]) => void) => tf.Tensor,
  backward: (dy: tf.Tensor, saved: tf.Tensor[]) => (GradFn | null)[],
): tf.Tensor {
  const inputMap: Record<string, tf.Tensor> = {};
  inputs.forEach((t, i) => (inputMap[i] = t));
  const shapes = inputs.map((t) => t.shape);
  const engine = tf.engine() as unknown as EngineWithKernelFunc;
  if (typeof engine.runKernelFunc !== 'function') {
    throw new Error('customOp: this tfjs-core has no Engine.runKernelFunc (written against tfjs-core 4.22)');
  }
  return engine.runKernelFunc({
    forwardFunc: (_backend, save) => forward(save),
    backwardsFunc: (dy, saved) => {
      const fns = backward(dy, saved);
      const out: Record<string, GradFn> = {};
      shapes.forEach((shape, i) => (out[i] = fns[i] ?? (() => tf.zeros(shape))));
      return out;
    },
    inputs: inputMap,
  });
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

/**
 * y = x @ W + b for x [M,K], W [K,N], b [N] (optional), with the fast backward (lazy per-input gradients).
 * Forward: one fused XNNPACK op on wasm (bias added inside the GEMM). Backward, every product a plain 2-D matmul:
 * dX = dy @ T(W), dW = T(x) @ dy, db = ones[1,M] @ dy. XNNPACK packs the right operand of a product on first use
 * and caches the packed operator per right operand, so db reuses the dy packed for dW.
 * (Tried: dW = T(T(dy) @ x), which packs the smaller x for the wide layers, with db from the same T(dy): 15-25%
 * faster per product in isolation, within noise (0-3%) in the training step; not kept.)
 */
export function linear(x: T2, w: T2, b?: tf.Tensor1D | null): T2 {
  if (x.rank !== 2 || w.rank !== 2) throw new Error(`linear: expected 2-D x and W, got [${x.shape}] [${w.shape}]`);
  return customOp(
    b ? [x, w, b] : [x, w],
    (save) => {
      save([x, w]);
      return b ? tf.fused.matMul({ a: x, b: w, bias: b }) : tf.matMul(x, w);
    },
    (dy, saved) => {
      const [xs, ws] = saved as T2[];
      const d = dy as T2;
      return [
        () => matNT(d, ws),
        () => (weightGradsOff > 0 ? tf.zerosLike(ws) : matTN(xs, d)),
        b ? () => (weightGradsOff > 0 ? tf.zeros([ws.shape[1]]) : colSum(d)) : null,
      ];
    },
  ) as T2;
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

/**
 * Exact GELU, x * Phi(x) with Phi the standard normal CDF (erf form, as PyTorch's nn.GELU() and Hugging Face's
 * "gelu"), with a fused backward dy/dx = Phi(x) + x phi(x). Phi is computed from erf's Abramowitz-Stegun 7.1.26
 * rational form (|error| <= 1.5e-7, the formula tfjs's own Erf kernel uses) in elementwise ops every backend runs
 * natively: wasm has no Erf kernel, and the tanh / sigmoid approximations differ from the exact form by up to ~1e-3,
 * which pretrained weights notice.
 */
const ERF_P = 0.3275911;
const ERF_A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429] as const;
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
export const geluExact = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  // q = 0.5 * erfc(|x|/sqrt2) = 0.5 * poly(t) * exp(-x^2/2), t = 1 / (1 + p |x| / sqrt2); Phi = x >= 0 ? 1 - q : q
  const e = tf.exp(tf.mul(tf.square(x), -0.5));
  const t = tf.reciprocal(tf.add(tf.mul(tf.abs(x), ERF_P * INV_SQRT2), 1));
  let poly: tf.Tensor = tf.mul(t, ERF_A[4]);
  for (let i = 3; i >= 0; i--) poly = tf.mul(tf.add(poly, ERF_A[i]), t);
  const q = tf.mul(tf.mul(poly, e), 0.5);
  const phi = tf.add(tf.mul(tf.sign(x), tf.sub(0.5, q)), 0.5);
  save([x, phi, e]);
  return {
    value: tf.mul(x, phi),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ph, es] = saved;
      return [tf.mul(dy, tf.add(ph, tf.mul(tf.mul(xs, es), INV_SQRT_2PI)))];
    },
  };
}) as unknown as CustomGradFn) as <R extends tf.Tensor>(x: R) => R;

const QUICK_GELU_K = 1.702;
/** QuickGELU x * sigmoid(1.702 x) (OpenAI CLIP's activation: a different function from GELU, not an approximation
 *  to swap in), with a fused backward s + 1.702 y (1 - s). */
export const quickGelu = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const s = tf.sigmoid(tf.mul(x, QUICK_GELU_K));
  const y = tf.mul(x, s);
  save([s, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [ss, ys] = saved;
      return [tf.mul(dy, tf.add(ss, tf.mul(tf.mul(ys, tf.sub(1, ss)), QUICK_GELU_K)))];
    },
  };
}) as unknown as CustomGradFn) as <R extends tf.Tensor>(x: R) => R;

export type ActivationName = 'gelu_tanh' | 'gelu' | 'quick_gelu';
/** the activation function of a name in a model config */
export function activationFn(name: ActivationName): <R extends tf.Tensor>(x: R) => R {
  switch (name) {
    case 'gelu_tanh':
      return gelu;
    case 'gelu':
      return geluExact;
    case 'quick_gelu':
      return quickGelu;
    default:
      throw new Error(`unknown activation '${String(name)}' (expected gelu_tanh, gelu or quick_gelu)`);
  }
}

const LN_EPS = 1e-5;

/** LayerNorm over the last axis of x [M,D] (eps 1e-5 unless given) with gain g [D] and bias b [D]; hand-written backward. */
export function layerNorm(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps = LN_EPS): T2 {
  if (x.rank !== 2) throw new Error(`layerNorm: expected 2-D x, got [${x.shape}]`);
  return customOp(
    [x, g, b],
    (save) => {
      const mu = tf.mean(x, 1, true);
      const xc = tf.sub(x, mu);
      const variance = tf.mean(tf.square(xc), 1, true);
      const rstd = tf.rsqrt(tf.add(variance, eps));
      const xhat = tf.mul(xc, rstd) as T2;
      save([xhat, rstd, g]);
      return tf.add(tf.mul(xhat, g), b) as T2;
    },
    (dy, saved) => {
      const [xh, rs, gs] = saved as [T2, tf.Tensor2D, tf.Tensor1D];
      const d = dy as T2;
      const off = () => weightGradsOff > 0;
      return [
        () => {
          // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
          const dxhat = tf.mul(d, gs);
          const m1 = tf.mean(dxhat, 1, true);
          const m2 = tf.mean(tf.mul(dxhat, xh), 1, true);
          return tf.mul(tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)), rs);
        },
        () => (off() ? tf.zerosLike(gs) : colSum(tf.mul(d, xh) as T2)),
        () => (off() ? tf.zerosLike(gs) : colSum(d)),
      ];
    },
  ) as T2;
}

/** row-wise L2 normalisation of [M,D] (eps inside the sqrt, so the zero vector maps to zero, not NaN). */
export function l2Normalize(x: T2, eps = 1e-12): T2 {
  return tf.tidy(() => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), 1, true), eps))) as T2);
}

/**
 * Batched product out[g] = op(a[g]) @ op(b[g]) for a, b [G, ., .] (op = optional transpose), returning
 * [G, M, N]. On wasm, tf.matMul with a batch dimension > 1 runs a scalar loop (~1.5 GFLOP/s); this runs it as
 * one depthwise convolution, which XNNPACK executes as a grouped GEMM: the G groups are the channels, the
 * contraction runs along the filter width: input [1, M, K, G] (a), filter [1, K, G, N] (b), valid padding ->
 * [1, M, 1, G*N]. With the three small transposes in and out it is ~4-6x faster than the batched matMul for the
 * attention shapes ([256, 17, 17] x [256, 17, 32]). Other backends use tf.matMul with transpose flags.
 */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transposeA = false, transposeB = false): tf.Tensor3D {
  const [g, a1, a2] = a.shape;
  const [, b1, b2] = b.shape;
  const m = transposeA ? a2 : a1;
  const k = transposeA ? a1 : a2;
  const n = transposeB ? b1 : b2;
  if (a.rank !== 3 || b.rank !== 3 || (transposeB ? b2 : b1) !== k || b.shape[0] !== g) {
    throw new Error(`batchMatMul: incompatible shapes [${a.shape}] [${b.shape}] (transposeA ${transposeA}, transposeB ${transposeB})`);
  }
  if (tf.getBackend() !== 'wasm') return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => {
    const input = tf.reshape(tf.transpose(a, transposeA ? [2, 1, 0] : [1, 2, 0]), [1, m, k, g]) as tf.Tensor4D;
    const filter = tf.reshape(tf.transpose(b, transposeB ? [2, 0, 1] : [1, 0, 2]), [1, k, g, n]) as tf.Tensor4D;
    const out = tf.depthwiseConv2d(input, filter, 1, 'valid'); // [1, M, 1, G*N], layout (m, g, n)
    return tf.transpose(tf.reshape(out, [m, g, n]), [1, 0, 2]) as tf.Tensor3D;
  });
}

/**
 * The attention core o = softmax(scale q k^T + mask) v for all heads at once, from the fused projection
 * qkv [B*T, 3D] (columns ordered (q|k|v, head, dh)) to the merged heads [B*T, D], as one op with a hand-written
 * backward. Layout work is one rank-4 transpose in ([B,T,3H,dh] -> [B,3H,T,dh]) and one out
 * ([B,H,T,dh] -> [B,T,H,dh]); q, k, v are contiguous-per-sequence slices of the transposed tensor. The batched
 * products ([B*H] small matrices) go through batchMatMul (a depthwise convolution on wasm: XNNPACK's matmul
 * takes batch 1 only). mask: additive key mask [B,T], additive score mask [B or 1, T, T] (causal), or null.
 */
function attentionCore(qkv: T2, mask: tf.Tensor2D | tf.Tensor3D | null, batch: number, seqLen: number, heads: number): T2 {
  const n = batch * seqLen;
  const d = qkv.shape[1] / 3;
  const dh = d / heads;
  const g = batch * heads;
  const scale = 1 / Math.sqrt(dh);
  const inputs = mask ? [qkv, mask] : [qkv];
  return customOp(
    inputs,
    (save) => {
      const hv = tf.transpose(tf.reshape(qkv, [batch, seqLen, 3 * heads, dh]), [0, 2, 1, 3]); // [B,3H,T,dh]
      const part = (i: number) =>
        tf.reshape(tf.slice(hv, [0, i * heads, 0, 0], [batch, heads, seqLen, dh]), [g, seqLen, dh]) as tf.Tensor3D;
      const q = part(0);
      const k = part(1);
      const v = part(2);
      let s = tf.mul(batchMatMul(q, k, false, true), scale); // [G,T,T]
      if (mask) {
        // [B,T] key mask -> [B,1,1,T]; [Bm,T,T] (e.g. causal [1,T,T]) -> [Bm,1,T,T]
        const m4 = mask.rank === 2 ? tf.reshape(mask, [batch, 1, 1, seqLen]) : tf.reshape(mask, [mask.shape[0], 1, seqLen, seqLen]);
        s = tf.reshape(tf.add(tf.reshape(s, [batch, heads, seqLen, seqLen]), m4), [g, seqLen, seqLen]);
      }
      const p = tf.softmax(s) as tf.Tensor3D;
      const o = batchMatMul(p, v); // [G,T,dh]
      save([q, k, v, p]);
      return tf.reshape(tf.transpose(tf.reshape(o, [batch, heads, seqLen, dh]), [0, 2, 1, 3]), [n, d]) as T2;
    },
    (dy, saved) => {
      const [q, k, v, p] = saved as tf.Tensor3D[];
      return [
        () => {
          const dout = tf.reshape(tf.transpose(tf.reshape(dy, [batch, seqLen, heads, dh]), [0, 2, 1, 3]), [g, seqLen, dh]) as tf.Tensor3D;
          const dv = batchMatMul(p, dout, true, false); // p^T dout
          const dp = batchMatMul(dout, v, false, true); // dout v^T
          // softmax backward, with the score scale folded in: ds = scale * p * (dp - sum(dp * p, -1))
          const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale) as tf.Tensor3D;
          const dq = batchMatMul(ds, k); // [G,T,dh]
          const dk = batchMatMul(ds, q, true, false); // ds^T q
          const four = (t: tf.Tensor) => tf.reshape(t, [batch, heads, seqLen, dh]);
          const dhv = tf.concat([four(dq), four(dk), four(dv)], 1); // [B,3H,T,dh]
          return tf.reshape(tf.transpose(dhv, [0, 2, 1, 3]), [n, 3 * d]);
        },
        null,
      ];
    },
  ) as T2;
}

/**
 * Attention of one query row per sequence (the class token, row 0) over all T keys: q [B, D] (already
 * projected), kv [B*T, 2D] (columns (k|v, head, dh)) -> [B, D] merged heads. The last image block only needs
 * the class token's output, so its queries, output projection and MLP run on B rows instead of B*T.
 */
function attentionCoreQuery(q: T2, kv: T2, batch: number, seqLen: number, heads: number, keyMask: tf.Tensor2D | null): T2 {
  const d = q.shape[1];
  const dh = d / heads;
  const g = batch * heads;
  const scale = 1 / Math.sqrt(dh);
  return customOp(
    keyMask ? [q, kv, keyMask] : [q, kv],
    (save) => {
      const hv = tf.transpose(tf.reshape(kv, [batch, seqLen, 2 * heads, dh]), [0, 2, 1, 3]); // [B,2H,T,dh]
      const k = tf.reshape(tf.slice(hv, [0, 0, 0, 0], [batch, heads, seqLen, dh]), [g, seqLen, dh]) as tf.Tensor3D;
      const v = tf.reshape(tf.slice(hv, [0, heads, 0, 0], [batch, heads, seqLen, dh]), [g, seqLen, dh]) as tf.Tensor3D;
      const qh = tf.reshape(q, [g, 1, dh]) as tf.Tensor3D; // [B, H*dh] -> [B*H, 1, dh]: no copy
      let sc = tf.mul(batchMatMul(qh, k, false, true), scale); // [G,1,T]
      if (keyMask) sc = tf.reshape(tf.add(tf.reshape(sc, [batch, heads, seqLen]), tf.reshape(keyMask, [batch, 1, seqLen])), [g, 1, seqLen]);
      const p = tf.softmax(sc) as tf.Tensor3D;
      const o = batchMatMul(p, v); // [G,1,dh]
      save([qh, k, v, p]);
      return tf.reshape(o, [batch, d]) as T2;
    },
    (dy, saved) => {
      const [qh, k, v, p] = saved as tf.Tensor3D[];
      // shared by both input gradients; cheap ([G,1,T]), so each closure recomputes it
      const dsOf = (dout: tf.Tensor3D) => {
        const dp = batchMatMul(dout, v, false, true); // [G,1,T]
        return tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), scale) as tf.Tensor3D;
      };
      return [
        () => {
          const dout = tf.reshape(dy, [g, 1, dh]) as tf.Tensor3D;
          return tf.reshape(batchMatMul(dsOf(dout), k), [batch, d]);
        },
        () => {
          const dout = tf.reshape(dy, [g, 1, dh]) as tf.Tensor3D;
          const dk = batchMatMul(dsOf(dout), qh, true, false); // [G,T,dh]
          const dv = batchMatMul(p, dout, true, false); // [G,T,dh]
          const four = (t: tf.Tensor) => tf.reshape(t, [batch, heads, seqLen, dh]);
          const dhv = tf.concat([four(dk), four(dv)], 1); // [B,2H,T,dh]
          return tf.reshape(tf.transpose(dhv, [0, 2, 1, 3]), [batch * seqLen, 2 * d]);
        },
        null,
      ];
    },
  ) as T2;
}

export interface AttentionParams {
  qkvW: T2; // [D, 3D]
  qkvB: tf.Tensor1D; // [3D]
  projW: T2; // [D, D]
  projB: tf.Tensor1D; // [D]
}

/**
 * Multi-head self-attention over x: [B*T, D] (tokens of B sequences of length T, row-major).
 * mask: additive key mask [B, T] (0 keep, large negative for padding keys), additive score mask [B or 1, T, T]
 * (e.g. causal: large negative above the diagonal), or null.
 * Returns [B*T, D] (after the output projection).
 */
export function attention(
  x: T2,
  p: AttentionParams,
  batch: number,
  seqLen: number,
  heads: number,
  keyMask: tf.Tensor2D | tf.Tensor3D | null,
): T2 {
  return tf.tidy(() => {
    const d = x.shape[1];
    if (d % heads !== 0) throw new Error(`attention: width ${d} not divisible by heads ${heads}`);
    const qkv = linear(x, p.qkvW, p.qkvB); // [B*T, 3D], columns ordered (q|k|v, head, dh)
    return linear(attentionCore(qkv, keyMask, batch, seqLen, heads), p.projW, p.projB);
  });
}

/**
 * Attention output for the first token (row 0) of every sequence only: x [B*T, D] (all tokens; they are the
 * keys and values) -> [B, D], equal to rows 0, T, 2T, ... of attention(x, ...) without a mask. Used by the last
 * image block, whose other rows nothing reads.
 */
export function attentionFirstToken(x: T2, p: AttentionParams, batch: number, seqLen: number, heads: number): T2 {
  return tf.tidy(() => attentionQueryRows(x, firstRows(x, batch, seqLen), p, batch, seqLen, heads, null));
}

/**
 * Attention output for one query row per sequence: x [B*T, D] (all tokens: keys and values), xq [B, D] (the query
 * rows, taken from x by the caller), keyMask additive [B, T] or null -> [B, D]. The CLIP text tower's last block
 * uses it for the EOT row, with a key mask that hides the keys after it (the causal mask's row).
 */
export function attentionQueryRows(
  x: T2,
  xq: T2,
  p: AttentionParams,
  batch: number,
  seqLen: number,
  heads: number,
  keyMask: tf.Tensor2D | null,
): T2 {
  return tf.tidy(() => {
    const d = x.shape[1];
    if (d % heads !== 0) throw new Error(`attention: width ${d} not divisible by heads ${heads}`);
    const q = linear(xq, tf.slice(p.qkvW, [0, 0], [d, d]) as T2, tf.slice(p.qkvB, [0], [d]) as tf.Tensor1D);
    const kv = linear(x, tf.slice(p.qkvW, [0, d], [d, 2 * d]) as T2, tf.slice(p.qkvB, [d], [2 * d]) as tf.Tensor1D);
    return linear(attentionCoreQuery(q, kv, batch, seqLen, heads, keyMask), p.projW, p.projB);
  });
}

/** rows 0, T, 2T, ... of x [B*T, D] -> [B, D] */
export function firstRows(x: T2, batch: number, seqLen: number): T2 {
  const d = x.shape[1];
  return tf.reshape(tf.slice(tf.reshape(x, [batch, seqLen, d]), [0, 0, 0], [batch, 1, d]), [batch, d]) as T2;
}
