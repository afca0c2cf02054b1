/**
 * The CLIP-style dual encoder: a ViT image tower and a transformer text tower, both ending in a linear
 * projection to embedDim and L2 normalisation, plus a learnable logit scale.
 *
 * Image tower (ViT): pixels in [0,1] are normalised with CLIP's mean/std inside the tower (so attacks work in
 * [0,1] pixel space); patchify by reshape/transpose (no conv); linear patch embedding; a class token and learned
 * position embeddings; pre-LN blocks (LN -> MHSA -> residual, LN -> MLP(GELU) -> residual); the final LayerNorm is
 * applied to the class token only (LN is per token, so this equals normalising all tokens and then pooling);
 * linear projection (no bias); L2 normalisation. Because only the class token is pooled, the last block runs its
 * queries, attention output projection and MLP for the class token only (keys and values for every token): the
 * same function, ~20% fewer FLOPs for the tower.
 *
 * Text tower: token embedding (gather) + learned position embedding; pre-LN blocks with bidirectional attention
 * and a key-padding mask (id 0 = pad); final LayerNorm; **masked mean pooling** over non-pad tokens; projection
 * (no bias); L2 normalisation. Why masked mean rather than CLIP's EOS token: CLIP pools EOS because its text
 * attention is causal, so only the last token has seen the whole caption. Our attention is bidirectional, so
 * every token sees the whole caption, and mean pooling (a) does not depend on tokenizer conventions (which id is
 * EOS, whether EOS survives truncation to maxLen), (b) gives every token a direct gradient path, which trains
 * faster from scratch on small data and gives embedding-space text attacks a smooth per-token signal, and (c) is
 * invariant to the amount of right padding (pads are masked out of attention and out of the mean).
 *
 * All fast ops (linear, layerNorm, gelu, attention) come from engine/ops.ts.
 *
 * Initialisation is deterministic: every variable draws from its own Rng seeded by (seed, variable name), so the
 * same seed gives bit-identical weights, and adding a variable never changes another's initial values. Init
 * scales follow CLIP: attention/proj std width^-0.5 (residual projections further x (2 depth)^-0.5), MLP fc1
 * (2 width)^-0.5, token embedding 0.02, text position 0.01, image class/position width^-0.5, patch embedding
 * 1/sqrt(fan_in); biases 0, LayerNorm gains 1. Normal draws are truncated at 2 std.
 */
import * as tf from '../engine/tf.js';
import {
  activationFn,
  attention,
  attentionFirstToken,
  attentionQueryRows,
  firstRows,
  gelu,
  l2Normalize,
  layerNorm,
  linear,
  colSum,
  weightGradsDisabled,
  type CustomGradFn,
} from '../engine/ops.js';
import { Rng } from '../util/rng.js';
import { CONV_STEM_CHANNELS, validateModelConfig } from './presets.js';
import type { DualEncoder, ModelConfig } from './types.js';

/**
 * How a new model's weights start: 'random' (seeded init, for training from scratch), 'zeros' (cheap), or a
 * function giving each variable's values by name and shape (artifact loading: the weights go straight into the
 * variables, so a 150M-parameter CLIP is never allocated twice, as zeros-then-assign would).
 */
export type WeightInit = 'random' | 'zeros' | ((name: string, shape: readonly number[]) => Float32Array);

export { modelConfigFromPreset } from './presets.js';

/** CLIP's pixel statistics (RGB), applied inside the image tower. */
export const PIXEL_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const PIXEL_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** Additive attention-mask value for padding keys. */
const MASK_NEG = -1e9;

/** Maximum logit scale exp(.), as in CLIP. */
export const MAX_LOGIT_SCALE = 100;

let instanceCounter = 0;

const causalMasks = new Map<number, Float32Array>();
/** additive [L, L] mask: 0 on and below the diagonal, MASK_NEG above (row i attends to keys 0..i) */
function causalMask(len: number): Float32Array {
  let m = causalMasks.get(len);
  if (!m) {
    m = new Float32Array(len * len);
    for (let i = 0; i < len; i++) for (let j = i + 1; j < len; j++) m[i * len + j] = MASK_NEG;
    causalMasks.set(len, m);
  }
  return m;
}

/**
 * 'same' 3x3 convolution with stride 2 and GELU, as im2col + the fast linear: each of the 9 taps is two
 * reshaped slices (no strided ops) and no conv kernels (wasm's filter gradient is slow, engine/kernels.ts).
 * w is [9*C, Cout] with rows ordered (tap, channel).
 */
export function conv3x3Stride2(x: tf.Tensor4D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor4D {
  const [bsz, h, wd, c] = x.shape;
  const h2 = h / 2;
  const w2 = wd / 2;
  // rows of the padded map as [B, H/2+1, 2, (W+2)*C]: row 2i+dy is block i + (dy>>1), phase dy&1; columns likewise.
  // Every slice stays 4-D (wasm slices and transposes of rank > 4 take a slow generic path, ~20x).
  const rows = tf.reshape(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), [bsz, h2 + 1, 2, (wd + 2) * c]);
  const taps: tf.Tensor2D[] = [];
  for (let dy = 0; dy < 3; dy++) {
    const picked = tf.reshape(tf.slice(rows, [0, dy >> 1, dy & 1, 0], [bsz, h2, 1, (wd + 2) * c]), [bsz * h2, w2 + 1, 2, c]);
    for (let dx = 0; dx < 3; dx++) {
      taps.push(tf.reshape(tf.slice(picked, [0, dx >> 1, dx & 1, 0], [bsz * h2, w2, 1, c]), [bsz * h2 * w2, c]));
    }
  }
  return tf.reshape(gelu(linear(tf.concat(taps, 1), w, b)), [bsz, h2, w2, w.shape[1]]);
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

type Init = { kind: 'normal'; std: number } | { kind: 'const'; value: number };

interface BlockVars {
  ln1g: tf.Variable<tf.Rank.R1>;
  ln1b: tf.Variable<tf.Rank.R1>;
  qkvW: tf.Variable<tf.Rank.R2>;
  qkvB: tf.Variable<tf.Rank.R1>;
  projW: tf.Variable<tf.Rank.R2>;
  projB: tf.Variable<tf.Rank.R1>;
  ln2g: tf.Variable<tf.Rank.R1>;
  ln2b: tf.Variable<tf.Rank.R1>;
  fc1W: tf.Variable<tf.Rank.R2>;
  fc1B: tf.Variable<tf.Rank.R1>;
  fc2W: tf.Variable<tf.Rank.R2>;
  fc2B: tf.Variable<tf.Rank.R1>;
}

/** x + r broadcast over rows, x [M,F], r [F]; r's gradient as a matmul column sum. */
const addRowVector = tf.customGrad(((x: tf.Tensor2D, r: tf.Tensor1D) => ({
  value: tf.add(x, r),
  gradFunc: (dy: tf.Tensor2D) => [dy, weightGradsDisabled() ? tf.zeros([dy.shape[1]]) : colSum(dy)],
})) as unknown as CustomGradFn) as (x: tf.Tensor2D, r: tf.Tensor1D) => tf.Tensor2D;

class DualEncoderImpl implements DualEncoder {
  readonly config: ModelConfig;
  readonly variables = new Map<string, tf.Variable>();
  private readonly prefix: string;
  private readonly seed: number;
  private disposed = false;

  private readonly clip: boolean;
  private readonly act: <R extends tf.Tensor>(x: R) => R;
  private readonly lnEps: number;
  private readonly init: WeightInit;

  // image
  /** conv stem (image.stem 'conv'): [9*Cin, Cout] im2col kernels and biases of the two stride-2 convolutions */
  private readonly iStem: { w: tf.Variable<tf.Rank.R2>; b: tf.Variable<tf.Rank.R1> }[];
  private readonly iPatchW: tf.Variable<tf.Rank.R2>;
  /** absent in the CLIP family (CLIP's conv1 has no bias) */
  private readonly iPatchB: tf.Variable<tf.Rank.R1> | null;
  /** CLIP's ln_pre (after class + position embeddings); absent in Manyfold's own architecture */
  private readonly iLnPre: { g: tf.Variable<tf.Rank.R1>; b: tf.Variable<tf.Rank.R1> } | null;
  private readonly iCls: tf.Variable<tf.Rank.R1>;
  private readonly iPos: tf.Variable<tf.Rank.R2>;
  private readonly iBlocks: BlockVars[];
  private readonly iLnG: tf.Variable<tf.Rank.R1>;
  private readonly iLnB: tf.Variable<tf.Rank.R1>;
  private readonly iProj: tf.Variable<tf.Rank.R2>;
  // text
  private readonly tTok: tf.Variable<tf.Rank.R2>;
  private readonly tPos: tf.Variable<tf.Rank.R2>;
  private readonly tBlocks: BlockVars[];
  private readonly tLnG: tf.Variable<tf.Rank.R1>;
  private readonly tLnB: tf.Variable<tf.Rank.R1>;
  private readonly tProj: tf.Variable<tf.Rank.R2>;
  private readonly logit: tf.Variable<tf.Rank.R0>;
  private readonly pixelScale: tf.Tensor1D;
  private readonly pixelShift: tf.Tensor1D;

  constructor(config: ModelConfig, seed: number, init: WeightInit) {
    validateModelConfig(config);
    if (!Number.isFinite(seed)) throw new Error(`createDualEncoder: seed must be a finite number, got ${seed}`);
    this.config = structuredClone(config);
    this.seed = Math.floor(seed);
    this.init = init;
    this.clip = config.family === 'clip';
    this.act = activationFn(this.clip ? config.clip!.activation : 'gelu_tanh');
    this.lnEps = this.clip ? config.clip!.lnEps : 1e-5;
    this.prefix = `manyfold${instanceCounter++}/`;
    const c = this.config;
    const im = c.image;
    const nPatch = (im.size / im.patch) ** 2;
    const wi = im.width;
    this.iStem = [];
    let pd = im.patch * im.patch * 3;
    if ((im.stem ?? 'linear') === 'conv') {
      const channels = [3, CONV_STEM_CHANNELS[0], CONV_STEM_CHANNELS[1]];
      for (let i = 0; i < 2; i++) {
        const fanIn = 9 * channels[i];
        this.iStem.push({
          w: this.v2(`image.stem.${i}.w`, [fanIn, channels[i + 1]], { kind: 'normal', std: Math.sqrt(2 / fanIn) }),
          b: this.v1(`image.stem.${i}.b`, [channels[i + 1]], { kind: 'const', value: 0 }),
        });
      }
      pd = (im.patch / 4) ** 2 * channels[2];
    }

    this.iPatchW = this.v2('image.patch.w', [pd, wi], { kind: 'normal', std: 1 / Math.sqrt(pd) });
    this.iPatchB = this.clip ? null : this.v1('image.patch.b', [wi], { kind: 'const', value: 0 });
    this.iCls = this.v1('image.cls', [wi], { kind: 'normal', std: wi ** -0.5 });
    this.iPos = this.v2('image.pos', [nPatch + 1, wi], { kind: 'normal', std: wi ** -0.5 });
    this.iLnPre = this.clip
      ? { g: this.v1('image.lnpre.g', [wi], { kind: 'const', value: 1 }), b: this.v1('image.lnpre.b', [wi], { kind: 'const', value: 0 }) }
      : null;
    this.iBlocks = [];
    for (let i = 0; i < im.depth; i++) this.iBlocks.push(this.block(`image.blocks.${i}`, wi, im.mlpRatio, im.depth));
    this.iLnG = this.v1('image.ln.g', [wi], { kind: 'const', value: 1 });
    this.iLnB = this.v1('image.ln.b', [wi], { kind: 'const', value: 0 });
    this.iProj = this.v2('image.proj.w', [wi, c.embedDim], { kind: 'normal', std: wi ** -0.5 });

    const tx = c.text;
    const wt = tx.width;
    this.tTok = this.v2('text.tok', [tx.vocabSize, wt], { kind: 'normal', std: 0.02 });
    this.tPos = this.v2('text.pos', [tx.maxLen, wt], { kind: 'normal', std: 0.01 });
    this.tBlocks = [];
    for (let i = 0; i < tx.depth; i++) this.tBlocks.push(this.block(`text.blocks.${i}`, wt, tx.mlpRatio, tx.depth));
    this.tLnG = this.v1('text.ln.g', [wt], { kind: 'const', value: 1 });
    this.tLnB = this.v1('text.ln.b', [wt], { kind: 'const', value: 0 });
    this.tProj = this.v2('text.proj.w', [wt, c.embedDim], { kind: 'normal', std: wt ** -0.5 });

    this.logit = this.variable('logitScale', [], { kind: 'const', value: c.initLogitScale }) as tf.Variable<tf.Rank.R0>;

    // (x - mean) / std == x * (1/std) + (-mean/std)
    const mean = this.clip ? c.clip!.pixelMean : PIXEL_MEAN;
    const std = this.clip ? c.clip!.pixelStd : PIXEL_STD;
    this.pixelScale = tf.keep(tf.tensor1d(std.map((s) => 1 / s)));
    this.pixelShift = tf.keep(tf.tensor1d(mean.map((m, i) => -m / std[i])));
  }

  private variable(name: string, shape: number[], init: Init): tf.Variable {
    const size = shape.reduce((a, b) => a * b, 1);
    const given = typeof this.init === 'function' ? this.init(name, shape) : null;
    if (given && given.length !== size) throw new Error(`weight ${name}: ${given.length} values given for shape [${shape.join(', ')}]`);
    const t = tf.tensor(given ?? this.initialValues(name, size, init), shape, 'float32');
    const v = tf.variable(t, true, this.prefix + name);
    t.dispose();
    this.variables.set(name, v);
    return v;
  }
  /** a fresh variable's values: constants as given; normal draws under 'random', zeros under 'zeros' */
  private initialValues(name: string, size: number, init: Init): Float32Array {
    const data = new Float32Array(size);
    if (init.kind === 'const') data.fill(init.value);
    else if (this.init === 'random') {
      const rng = new Rng((this.seed ^ fnv1a(name)) >>> 0);
      for (let i = 0; i < size; i++) {
        let z = rng.normal();
        while (z > 2 || z < -2) z = rng.normal();
        data[i] = z * init.std;
      }
    }
    return data;
  }

  private v1(name: string, shape: [number], init: Init) {
    return this.variable(name, shape, init) as tf.Variable<tf.Rank.R1>;
  }
  private v2(name: string, shape: [number, number], init: Init) {
    return this.variable(name, shape, init) as tf.Variable<tf.Rank.R2>;
  }

  private block(p: string, w: number, r: number, depth: number): BlockVars {
    const m = Math.round(r * w);
    const attnStd = w ** -0.5;
    const projStd = w ** -0.5 * (2 * depth) ** -0.5;
    const fcStd = (2 * w) ** -0.5;
    return {
      ln1g: this.v1(`${p}.ln1.g`, [w], { kind: 'const', value: 1 }),
      ln1b: this.v1(`${p}.ln1.b`, [w], { kind: 'const', value: 0 }),
      qkvW: this.v2(`${p}.attn.qkv.w`, [w, 3 * w], { kind: 'normal', std: attnStd }),
      qkvB: this.v1(`${p}.attn.qkv.b`, [3 * w], { kind: 'const', value: 0 }),
      projW: this.v2(`${p}.attn.proj.w`, [w, w], { kind: 'normal', std: projStd }),
      projB: this.v1(`${p}.attn.proj.b`, [w], { kind: 'const', value: 0 }),
      ln2g: this.v1(`${p}.ln2.g`, [w], { kind: 'const', value: 1 }),
      ln2b: this.v1(`${p}.ln2.b`, [w], { kind: 'const', value: 0 }),
      fc1W: this.v2(`${p}.mlp.fc1.w`, [w, m], { kind: 'normal', std: fcStd }),
      fc1B: this.v1(`${p}.mlp.fc1.b`, [m], { kind: 'const', value: 0 }),
      fc2W: this.v2(`${p}.mlp.fc2.w`, [m, w], { kind: 'normal', std: projStd }),
      fc2B: this.v1(`${p}.mlp.fc2.b`, [w], { kind: 'const', value: 0 }),
    };
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('DualEncoder has been disposed');
  }

  /** one pre-LN transformer block over h [B*T, W] */
  private runBlock(
    h: tf.Tensor2D,
    b: BlockVars,
    batch: number,
    seqLen: number,
    heads: number,
    mask: tf.Tensor2D | tf.Tensor3D | null,
  ): tf.Tensor2D {
    const a = attention(
      layerNorm(h, b.ln1g, b.ln1b, this.lnEps),
      { qkvW: b.qkvW, qkvB: b.qkvB, projW: b.projW, projB: b.projB },
      batch,
      seqLen,
      heads,
      mask,
    );
    const h1 = tf.add(h, a) as tf.Tensor2D;
    const m = linear(this.act(linear(layerNorm(h1, b.ln2g, b.ln2b, this.lnEps), b.fc1W, b.fc1B)), b.fc2W, b.fc2B);
    return tf.add(h1, m) as tf.Tensor2D;
  }

  /**
   * The last image block for the class token only: h [B*T, W] -> the class token's output [B, W]. Same values as
   * rows 0, T, 2T, ... of runBlock (attention keys/values still come from every token), but the queries, the
   * attention output projection, LayerNorm 2 and the MLP run on B rows instead of B*T: the image tower pools
   * the class token, so the other rows of the last block are never read.
   */
  private runBlockFirstToken(h: tf.Tensor2D, b: BlockVars, batch: number, seqLen: number, heads: number): tf.Tensor2D {
    const a = attentionFirstToken(
      layerNorm(h, b.ln1g, b.ln1b, this.lnEps),
      { qkvW: b.qkvW, qkvB: b.qkvB, projW: b.projW, projB: b.projB },
      batch,
      seqLen,
      heads,
    );
    return this.finishBlockRows(firstRows(h, batch, seqLen), a, b);
  }

  /** runBlock's output at one row per sequence (flat indices `rows` into h), keys masked by keyMask [B, T] */
  private runBlockRows(h: tf.Tensor2D, b: BlockVars, batch: number, seqLen: number, heads: number, rows: tf.Tensor1D, keyMask: tf.Tensor2D): tf.Tensor2D {
    const hn = layerNorm(h, b.ln1g, b.ln1b, this.lnEps);
    const params = { qkvW: b.qkvW, qkvB: b.qkvB, projW: b.projW, projB: b.projB };
    const a = attentionQueryRows(hn, tf.gather(hn, rows) as tf.Tensor2D, params, batch, seqLen, heads, keyMask);
    return this.finishBlockRows(tf.gather(h, rows) as tf.Tensor2D, a, b);
  }

  /** the residual and MLP half of a block, on the rows it is asked for */
  private finishBlockRows(hRows: tf.Tensor2D, a: tf.Tensor2D, b: BlockVars): tf.Tensor2D {
    const h1 = tf.add(hRows, a) as tf.Tensor2D;
    const m = linear(this.act(linear(layerNorm(h1, b.ln2g, b.ln2b, this.lnEps), b.fc1W, b.fc1B)), b.fc2W, b.fc2B);
    return tf.add(h1, m) as tf.Tensor2D;
  }

  imageTower(x: tf.Tensor4D): tf.Tensor2D {
    this.checkAlive();
    const im = this.config.image;
    if (x.rank !== 4 || x.shape[1] !== im.size || x.shape[2] !== im.size || x.shape[3] !== 3) {
      throw new Error(`imageTower: expected [B,${im.size},${im.size},3] pixels, got [${x.shape}]`);
    }
    return tf.tidy(() => {
      const bsz = x.shape[0];
      const g = im.size / im.patch;
      const n = g * g;
      const t = n + 1;
      const w = im.width;
      const xf = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
      let xn = tf.add(tf.mul(xf, this.pixelScale), this.pixelShift) as tf.Tensor4D;
      let p = im.patch;
      for (const conv of this.iStem) {
        xn = conv3x3Stride2(xn, conv.w, conv.b);
        p /= 2;
      }
      const ch = xn.shape[3];
      // [B, g, p, g, p, C] -> [B, g, g, p, p, C] -> [B*n, p*p*C]
      const patches = tf.reshape(tf.transpose(tf.reshape(xn, [bsz, g, p, g, p, ch]), [0, 1, 3, 2, 4, 5]), [bsz * n, p * p * ch]) as tf.Tensor2D;
      const emb = tf.reshape(linear(patches, this.iPatchW, this.iPatchB), [bsz, n, w]);
      const cls = tf.add(tf.zeros([bsz, 1, w]), tf.reshape(this.iCls, [1, 1, w]));
      const tokens = tf.reshape(tf.concat([cls, emb], 1), [bsz, t * w]) as tf.Tensor2D;
      let h = tf.reshape(addRowVector(tokens, tf.reshape(this.iPos, [t * w])), [bsz * t, w]) as tf.Tensor2D;
      if (this.iLnPre) h = layerNorm(h, this.iLnPre.g, this.iLnPre.b, this.lnEps);
      const last = this.iBlocks.length - 1;
      // a tidy per block frees its intermediates as it ends (what backprop needs the tape keeps for itself): the
      // forward pass's peak memory is one block's activations, not the tower's; wasm's heap never shrinks
      for (let i = 0; i < last; i++) {
        const hi = h;
        h = tf.tidy(() => this.runBlock(hi, this.iBlocks[i], bsz, t, im.heads, null));
      }
      // the class token's output of the last block (the tower pools the class token)
      const pooled = this.runBlockFirstToken(h, this.iBlocks[last], bsz, t, im.heads);
      const z = linear(layerNorm(pooled, this.iLnG, this.iLnB, this.lnEps), this.iProj);
      return l2Normalize(z);
    });
  }

  embedTokens(ids: tf.Tensor2D): tf.Tensor3D {
    this.checkAlive();
    const tx = this.config.text;
    const [bsz, len] = this.checkIds(ids, 'embedTokens');
    return tf.tidy(() => {
      const idsI = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
      const e = tf.gather(this.tTok, tf.reshape(idsI, [bsz * len])) as tf.Tensor2D; // [B*L, W]
      const pos = len === tx.maxLen ? this.tPos : tf.slice(this.tPos, [0, 0], [len, tx.width]);
      const withPos = addRowVector(tf.reshape(e, [bsz, len * tx.width]) as tf.Tensor2D, tf.reshape(pos, [len * tx.width]));
      return tf.reshape(withPos, [bsz, len, tx.width]) as tf.Tensor3D;
    });
  }

  textTowerFromEmbeddings(emb: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor2D {
    this.checkAlive();
    const tx = this.config.text;
    const [bsz, len] = this.checkIds(ids, 'textTowerFromEmbeddings');
    if (emb.rank !== 3 || emb.shape[0] !== bsz || emb.shape[1] !== len || emb.shape[2] !== tx.width) {
      throw new Error(`textTowerFromEmbeddings: expected emb [${bsz},${len},${tx.width}], got [${emb.shape}]`);
    }
    if (this.clip) return this.clipTextFromEmbeddings(emb, ids, bsz, len);
    return tf.tidy(() => {
      const keep = tf.cast(tf.notEqual(ids, 0), 'float32') as tf.Tensor2D; // [B, L]
      const keyMask = tf.mul(tf.sub(1, keep), MASK_NEG) as tf.Tensor2D;
      let h = tf.reshape(emb, [bsz * len, tx.width]) as tf.Tensor2D;
      for (const b of this.tBlocks) {
        const hi = h;
        h = tf.tidy(() => this.runBlock(hi, b, bsz, len, tx.heads, keyMask));
      }
      const hn = tf.reshape(layerNorm(h, this.tLnG, this.tLnB), [bsz, len, tx.width]);
      // masked mean over non-pad tokens; an all-pad row pools to zero (count clamped to 1)
      const summed = tf.sum(tf.mul(hn, tf.reshape(keep, [bsz, len, 1])), 1);
      const count = tf.maximum(tf.sum(keep, 1, true), 1);
      const pooled = tf.div(summed, count) as tf.Tensor2D;
      return l2Normalize(linear(pooled, this.tProj));
    });
  }

  /**
   * CLIP's text tower: causal attention with no padding mask, final LayerNorm and projection of the EOT token only.
   * Row i attends to rows <= i, so the pooled EOT row never sees what follows it: right padding (whatever its id)
   * and the sequence length a batch is padded to change nothing. The pooled position per row is the first position
   * holding the largest id ('argmax', the legacy rule: CLIP's EOT is its largest id) or the first holding
   * eosTokenId ('eos'); "first" matters when the id occurs twice, and is made explicit here rather than left to the
   * backend's argMax tie rule.
   */
  private clipTextFromEmbeddings(emb: tf.Tensor3D, ids: tf.Tensor2D, bsz: number, len: number): tf.Tensor2D {
    const tx = this.config.text;
    const cc = this.config.clip!;
    return tf.tidy(() => {
      const idsI = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
      const causal = tf.tensor3d(causalMask(len), [1, len, len]);
      const hit = cc.textPooling === 'argmax' ? tf.equal(idsI, tf.max(idsI, 1, true)) : tf.equal(idsI, cc.eosTokenId);
      // the earliest hit scores highest: hit * (len - position)
      const firstHit = tf.argMax(tf.mul(tf.cast(hit, 'float32'), tf.range(len, 0, -1, 'float32')), 1) as tf.Tensor1D;
      const rows = tf.add(firstHit, tf.range(0, bsz * len, len, 'int32')) as tf.Tensor1D;
      let h = tf.reshape(emb, [bsz * len, tx.width]) as tf.Tensor2D;
      const last = this.tBlocks.length - 1;
      for (let i = 0; i < last; i++) {
        const hi = h;
        h = tf.tidy(() => this.runBlock(hi, this.tBlocks[i], bsz, len, tx.heads, causal));
      }
      // the last block for the pooled row only (as the image tower's class token): its causal-mask row hides the
      // keys after it
      const after = tf.mul(tf.cast(tf.greater(tf.range(0, len, 1, 'float32').reshape([1, len]), tf.reshape(firstHit, [bsz, 1])), 'float32'), MASK_NEG) as tf.Tensor2D;
      const pooled = this.runBlockRows(h, this.tBlocks[last], bsz, len, tx.heads, rows, after);
      return l2Normalize(linear(layerNorm(pooled, this.tLnG, this.tLnB, this.lnEps), this.tProj));
    });
  }

  textTower(ids: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.textTowerFromEmbeddings(this.embedTokens(ids), ids));
  }

  logitScale(): tf.Scalar {
    this.checkAlive();
    return tf.tidy(() => tf.exp(tf.minimum(this.logit, Math.log(MAX_LOGIT_SCALE))) as tf.Scalar);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.variables.values()) v.dispose();
    this.pixelScale.dispose();
    this.pixelShift.dispose();
  }

  private checkIds(ids: tf.Tensor2D, where: string): [number, number] {
    const tx = this.config.text;
    if (ids.rank !== 2) throw new Error(`${where}: expected ids [B,L], got [${ids.shape}]`);
    const [bsz, len] = ids.shape;
    if (len < 1 || len > tx.maxLen) throw new Error(`${where}: sequence length ${len} not in [1, ${tx.maxLen}]`);
    if (ids.dtype !== 'int32' && ids.dtype !== 'float32') throw new Error(`${where}: ids must be int32`);
    return [bsz, len];
  }
}

/**
 * Build a dual encoder with freshly initialised weights. Same (config, seed) -> bit-identical weights.
 * Variable names (the keys of `variables`, e.g. 'image.blocks.0.attn.qkv.w') are stable across instances; the
 * underlying tf.Variable names carry a per-instance prefix so several encoders can coexist.
 * `init: 'zeros'` skips the random draws for a model whose weights are all assigned next (artifact loading).
 */
export function createDualEncoder(config: ModelConfig, seed: number, init: WeightInit = 'random'): DualEncoder {
  return new DualEncoderImpl(config, seed, init);
}
