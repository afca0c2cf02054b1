/**
 * Analytic FLOP counts of the dual encoder (matmul FLOPs only: 2*M*N*K per product; elementwise ops,
 * softmax and LayerNorm are not counted, as is conventional).
 *
 * Per tower, forward = L + A with
 *   L (linear layers) = patch/token stage + depth * (2*n*W*3W + 2*n*W*W + 2 * 2*n*W*(r*W)) + 2*B*W*E
 *     where n = B*T tokens, W width, r mlpRatio, E embedDim; the image patch embedding adds 2*B*N*(p*p*3)*W,
 *     the text token embedding is a gather (0 FLOPs); a conv stem (image.stem 'conv') adds its two im2col
 *     convolutions and embeds (p/4)^2 * C2 features per patch instead
 *   A (attention products) = depth * 2 * (2*B*T*T*W)    (QK^T and PV over all heads)
 * Backward of a linear layer costs 2x its forward (dX and dW), of an attention product 2x as well.
 *   inputGrad (gradient w.r.t. the pixels only, as in one PGD step) = forward + (L + 2A)
 *     (every dX product; dV, dQ and dK are all needed) = 2L + 3A
 *   trainStep (gradients of all weights; no gradient w.r.t. the pixels) = forward + (2L - L_patch_dX + 2A)
 *     = 3L + 3A - L_patch   (the patch embedding's dX is not needed when the input is not differentiated)
 *
 * The image tower pools the class token, so Manyfold runs its last block for the class token only (queries,
 * output projection and MLP on B rows; keys and values still for all B*T tokens): that block costs
 *   2*n*W*2W (k, v) + 2*B*W*W (q) + 2*B*W*W (proj) + 2 * 2*B*W*(r*W) (MLP), attention 2 * (2*B*T*W).
 * imageTowerFlops counts what is executed; with { dense: true } it counts the standard ViT (every block on every
 * token), the figure earlier benchmarks divided by.
 */
import { CONV_STEM_CHANNELS } from './presets.js';
import type { ModelConfig } from './types.js';

export interface TowerFlops {
  /** forward FLOPs */
  forward: number;
  /** forward + backward to the input only */
  inputGrad: number;
  /** forward + backward to all weights (not to the input) */
  trainStep: number;
}

function blockLinear(n: number, w: number, r: number): number {
  return 2 * n * w * 3 * w + 2 * n * w * w + 2 * (2 * n * w * r * w);
}

export interface FlopOptions {
  /** count the last image block on every token (a standard ViT) instead of the class token only (default false) */
  dense?: boolean;
}

export function imageTowerFlops(c: ModelConfig, batch: number, opts: FlopOptions = {}): TowerFlops {
  const im = c.image;
  const nPatch = (im.size / im.patch) ** 2;
  const t = nPatch + 1;
  const n = batch * t;
  const w = im.width;
  // linear stem: one layer on p*p*3 pixels; conv stem: two 3x3 stride-2 convolutions, then p/4 x p/4 cells of C2
  let patch = 2 * batch * nPatch * im.patch * im.patch * 3 * w;
  let stem = 0;
  if ((im.stem ?? 'linear') === 'conv') {
    const [c1, c2] = CONV_STEM_CHANNELS;
    stem = 2 * batch * (im.size / 2) ** 2 * 27 * c1 + 2 * batch * (im.size / 4) ** 2 * 9 * c1 * c2;
    patch = 2 * batch * nPatch * (im.patch / 4) ** 2 * c2 * w;
  }
  // the first layer's input gradient is not needed in a training step
  const firstLayer = stem > 0 ? 2 * batch * (im.size / 2) ** 2 * 27 * CONV_STEM_CHANNELS[0] : patch;
  const fullBlocks = opts.dense ? im.depth : im.depth - 1;
  const lastLin = opts.dense ? 0 : 2 * n * w * 2 * w + 2 * 2 * batch * w * w + 2 * (2 * batch * w * im.mlpRatio * w);
  const lastAtt = opts.dense ? 0 : 2 * (2 * batch * t * w);
  const lin = stem + patch + fullBlocks * blockLinear(n, w, im.mlpRatio) + lastLin + 2 * batch * w * c.embedDim;
  const att = fullBlocks * 2 * (2 * batch * t * t * w) + lastAtt;
  return { forward: lin + att, inputGrad: 2 * lin + 3 * att, trainStep: 3 * lin + 3 * att - firstLayer };
}

export function textTowerFlops(c: ModelConfig, batch: number, seqLen = c.text.maxLen): TowerFlops {
  const tx = c.text;
  const n = batch * seqLen;
  const lin = tx.depth * blockLinear(n, tx.width, tx.mlpRatio) + 2 * batch * tx.width * c.embedDim;
  const att = tx.depth * 2 * (2 * batch * seqLen * seqLen * tx.width);
  // the token embedding is a gather: no input-side matmul
  return { forward: lin + att, inputGrad: 2 * lin + 3 * att, trainStep: 3 * lin + 3 * att };
}
