/**
 * The dual encoder's two towers as forward-only ONNX graphs, built from a ModelConfig and its weights (by the
 * artifact's names): the same function as dual-encoder.ts, written in ONNX operators so that a native runtime
 * (onnxruntime-node, engine/onnx/runtime.ts) can serve embeddings at native speed. Training and white-box attacks
 * need gradients and stay on tfjs; serving only needs the forward pass.
 *
 * Both families are covered: Manyfold's own presets (patch bias, linear or conv stem, tanh-GELU, bidirectional
 * text attention with a padding mask and masked mean pooling) and pretrained CLIP (ln_pre, QuickGELU or exact
 * GELU, causal text attention pooled at the first EOT by either rule). Parity with the tfjs encoder and with the
 * independent PyTorch reference is tested (test/model/onnx-graph.test.ts).
 *
 * Layout: activations are [B, T, W] (ONNX's MatMul broadcasts over the batch); the image input is NHWC pixels in
 * [0, 1] as for the tfjs tower; the text input is int64 ids [B, L] of any L <= maxLen.
 */
import { GraphBuilder } from '../engine/onnx/graph.js';
import { DT_FLOAT, DT_INT64, type ExternalData } from '../engine/onnx/proto.js';
import { CONV_STEM_CHANNELS, validateModelConfig } from './presets.js';
import { PIXEL_MEAN, PIXEL_STD } from './dual-encoder.js';
import type { ModelConfig } from './types.js';

/**
 * Where the towers' weights come from, by artifact name (e.g. 'image.blocks.0.attn.qkv.w'), laid out as the
 * artifact stores them: `read` gives the values; `locate`, when given, gives their place in an artifact shard
 * instead (row-major float32, the layout ONNX wants), so the graph references the shard and the runtime reads it
 * from there (see engine/onnx/proto.ts ExternalData).
 */
export interface WeightSource {
  read(name: string): Promise<Float32Array> | Float32Array;
  locate?(name: string): ExternalData | null;
}

export const IMAGE_INPUT = 'pixels';
export const TEXT_INPUT = 'input_ids';
export const IMAGE_OUTPUT = 'image_embeds';
export const TEXT_OUTPUT = 'text_embeds';

const MASK_NEG = -1e9;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

interface TowerShape {
  width: number;
  heads: number;
  depth: number;
  mlpRatio: number;
}

class TowerBuilder {
  readonly g: GraphBuilder;
  constructor(
    name: string,
    private readonly config: ModelConfig,
    private readonly source: WeightSource,
  ) {
    this.g = new GraphBuilder(name);
  }

  get clip(): boolean {
    return this.config.family === 'clip';
  }
  get eps(): number {
    return this.clip ? this.config.clip!.lnEps : 1e-5;
  }

  async w(name: string, dims: readonly number[]): Promise<string> {
    const at = this.source.locate?.(name);
    if (at) return this.g.externalWeight(name, at, dims);
    return this.g.weight(name, await this.source.read(name), dims);
  }

  activation(x: string): string {
    const g = this.g;
    const kind = this.clip ? this.config.clip!.activation : 'gelu_tanh';
    if (kind === 'quick_gelu') return g.mul(x, g.sigmoid(g.mul(x, g.scalar(1.702))));
    if (kind === 'gelu') {
      // 0.5 x (1 + erf(x / sqrt 2)): the exact form (onnxruntime fuses it into one Gelu kernel)
      const erf = g.op('Erf', [g.mul(x, g.scalar(Math.SQRT1_2))]);
      return g.mul(g.mul(x, g.scalar(0.5)), g.add(erf, g.scalar(1)));
    }
    // tanh approximation as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), as engine/ops.ts writes it
    const c1 = 2 * SQRT_2_OVER_PI;
    const c2 = c1 * 0.044715;
    const inner = g.mul(x, g.add(g.mul(g.mul(x, x), g.scalar(c2)), g.scalar(c1)));
    return g.mul(x, g.sigmoid(inner));
  }

  /** one pre-LN block over h [B, T, W]; mask: additive, broadcastable to [B, heads, T, T], or null */
  async block(h: string, p: string, t: TowerShape, mask: string | null): Promise<string> {
    const g = this.g;
    const W = t.width;
    const D = W / t.heads;
    const m = Math.round(t.mlpRatio * W);
    const x = g.layerNorm(h, await this.w(`${p}.ln1.g`, [W]), await this.w(`${p}.ln1.b`, [W]), this.eps);
    const qkv = g.linear(x, await this.w(`${p}.attn.qkv.w`, [W, 3 * W]), await this.w(`${p}.attn.qkv.b`, [3 * W]));
    // columns are (q|k|v, head, dh): [B, T, 3, H, D] -> [3, B, H, T, D]
    const split = g.transpose(g.reshape(qkv, [0, 0, 3, t.heads, D]), [2, 0, 3, 1, 4]);
    const q = g.op('Gather', [split, g.ints([0], [])], { axis: { i: 0 } });
    const k = g.op('Gather', [split, g.ints([1], [])], { axis: { i: 0 } });
    const v = g.op('Gather', [split, g.ints([2], [])], { axis: { i: 0 } });
    let scores = g.matMul(g.mul(q, g.scalar(1 / Math.sqrt(D))), g.transpose(k, [0, 1, 3, 2]));
    if (mask) scores = g.add(scores, mask);
    const ctx = g.matMul(g.softmax(scores), v); // [B, H, T, D]
    const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [0, 0, W]);
    const a = g.linear(merged, await this.w(`${p}.attn.proj.w`, [W, W]), await this.w(`${p}.attn.proj.b`, [W]));
    const h1 = g.add(h, a);
    const y = g.layerNorm(h1, await this.w(`${p}.ln2.g`, [W]), await this.w(`${p}.ln2.b`, [W]), this.eps);
    const f = this.activation(g.linear(y, await this.w(`${p}.mlp.fc1.w`, [W, m]), await this.w(`${p}.mlp.fc1.b`, [m])));
    return g.add(h1, g.linear(f, await this.w(`${p}.mlp.fc2.w`, [m, W]), await this.w(`${p}.mlp.fc2.b`, [W])));
  }
}

/** The image tower: pixels [B, S, S, 3] in [0, 1] -> image_embeds [B, E] (L2-normalised). */
export async function buildImageGraph(config: ModelConfig, source: WeightSource): Promise<Uint8Array> {
  validateModelConfig(config);
  const tb = new TowerBuilder('manyfold_image_tower', config, source);
  const g = tb.g;
  const im = config.image;
  const W = im.width;
  const grid = im.size / im.patch;
  const n = grid * grid;
  const x = g.input(IMAGE_INPUT, DT_FLOAT, ['batch', im.size, im.size, 3]);
  const mean = tb.clip ? config.clip!.pixelMean : PIXEL_MEAN;
  const std = tb.clip ? config.clip!.pixelStd : PIXEL_STD;
  let xn = g.add(g.mul(x, g.floats(std.map((s) => 1 / s))), g.floats(mean.map((m, i) => -m / std[i])));
  let p = im.patch;
  let ch = 3;
  if ((im.stem ?? 'linear') === 'conv') {
    // the im2col kernels [9*Cin, Cout] (rows (dy*3+dx, c)) as Conv weights [Cout, Cin, 3, 3], in NCHW
    let nchw = g.transpose(xn, [0, 3, 1, 2]);
    const channels = [3, CONV_STEM_CHANNELS[0], CONV_STEM_CHANNELS[1]];
    for (let i = 0; i < 2; i++) {
      const cin = channels[i];
      const cout = channels[i + 1];
      const w = await source.read(`image.stem.${i}.w`);
      const k = new Float32Array(cout * cin * 9);
      for (let tap = 0; tap < 9; tap++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) k[(o * cin + c) * 9 + tap] = w[(tap * cin + c) * cout + o];
      const conv = g.op('Conv', [nchw, g.weight(`image.stem.${i}.w`, k, [cout, cin, 3, 3]), await tb.w(`image.stem.${i}.b`, [cout])], {
        kernel_shape: { ints: [3, 3] },
        strides: { ints: [2, 2] },
        pads: { ints: [1, 1, 1, 1] },
      });
      nchw = tb.activation(conv);
      ch = cout;
      p /= 2;
    }
    xn = g.transpose(nchw, [0, 2, 3, 1]);
  }
  // [B, g, p, g, p, C] -> [B, g, g, p, p, C] -> [B, n, p*p*C]
  const patches = g.reshape(g.transpose(g.reshape(xn, [-1, grid, p, grid, p, ch]), [0, 1, 3, 2, 4, 5]), [-1, n, p * p * ch]);
  const pd = p * p * ch;
  const emb = g.linear(patches, await tb.w('image.patch.w', [pd, W]), tb.clip ? undefined : await tb.w('image.patch.b', [W]));
  const clsShape = g.op('Concat', [g.dim(x, 0), g.ints([1, W])], { axis: { i: 0 } });
  const cls = g.op('Expand', [await tb.w('image.cls', [1, 1, W]), clsShape]);
  let h = g.add(g.op('Concat', [cls, emb], { axis: { i: 1 } }), await tb.w('image.pos', [n + 1, W]));
  if (tb.clip) h = g.layerNorm(h, await tb.w('image.lnpre.g', [W]), await tb.w('image.lnpre.b', [W]), tb.eps);
  for (let i = 0; i < im.depth; i++) h = await tb.block(h, `image.blocks.${i}`, im, null);
  const pooled = g.op('Gather', [h, g.ints([0], [])], { axis: { i: 1 } }); // the class token [B, W]
  const z = g.linear(g.layerNorm(pooled, await tb.w('image.ln.g', [W]), await tb.w('image.ln.b', [W]), tb.eps), await tb.w('image.proj.w', [W, config.embedDim]));
  g.output(g.l2Normalize(z), IMAGE_OUTPUT, ['batch', config.embedDim]);
  return g.encode({ 'manyfold.tower': 'image', 'manyfold.preset': config.preset });
}

/** The text tower: input_ids [B, L] (int64, L <= maxLen, right-padded with 0) -> text_embeds [B, E]. */
export async function buildTextGraph(config: ModelConfig, source: WeightSource): Promise<Uint8Array> {
  validateModelConfig(config);
  const tb = new TowerBuilder('manyfold_text_tower', config, source);
  const g = tb.g;
  const tx = config.text;
  const W = tx.width;
  const ids = g.input(TEXT_INPUT, DT_INT64, ['batch', 'sequence']);
  const len = g.dim(ids, 1);
  const pos = g.slice(await tb.w('text.pos', [tx.maxLen, W]), [0], len, [0]);
  let h = g.add(g.op('Gather', [await tb.w('text.tok', [tx.vocabSize, W]), ids], { axis: { i: 0 } }), pos);
  let pooled: string;
  if (tb.clip) {
    const cc = config.clip!;
    // causal: row i attends to keys <= i; the [maxLen, maxLen] mask cut to [L, L]
    const causal = new Float32Array(tx.maxLen * tx.maxLen);
    for (let i = 0; i < tx.maxLen; i++) for (let j = i + 1; j < tx.maxLen; j++) causal[i * tx.maxLen + j] = MASK_NEG;
    const mask = g.slice(g.weight('text.causal_mask', causal, [tx.maxLen, tx.maxLen]), [0, 0], g.op('Concat', [len, len], { axis: { i: 0 } }), [0, 1]);
    for (let i = 0; i < tx.depth; i++) h = await tb.block(h, `text.blocks.${i}`, tx, mask);
    // the first position of the largest id ('argmax') or of eosTokenId ('eos'); ONNX ArgMax picks the first maximum
    const score = cc.textPooling === 'argmax' ? g.op('Cast', [ids], { to: { i: DT_FLOAT } }) : g.op('Cast', [g.op('Equal', [ids, g.ints([cc.eosTokenId], [])])], { to: { i: DT_FLOAT } });
    const at = g.op('ArgMax', [score], { axis: { i: 1 }, keepdims: { i: 1 } }); // [B, 1]
    pooled = g.op('GatherND', [h, at], { batch_dims: { i: 1 } }); // [B, W]
    pooled = g.layerNorm(pooled, await tb.w('text.ln.g', [W]), await tb.w('text.ln.b', [W]), tb.eps);
  } else {
    // key-padding mask (id 0 = pad) and masked mean pooling, as dual-encoder.ts
    const keep = g.op('Cast', [g.op('Not', [g.op('Equal', [ids, g.ints([0], [])])])], { to: { i: DT_FLOAT } }); // [B, L]
    const mask = g.op('Unsqueeze', [g.mul(g.op('Sub', [g.scalar(1), keep]), g.scalar(MASK_NEG)), g.ints([1, 2])]); // [B, 1, 1, L]
    for (let i = 0; i < tx.depth; i++) h = await tb.block(h, `text.blocks.${i}`, tx, mask);
    const hn = g.layerNorm(h, await tb.w('text.ln.g', [W]), await tb.w('text.ln.b', [W]), tb.eps);
    const summed = g.op('ReduceSum', [g.mul(hn, g.op('Unsqueeze', [keep, g.ints([2])])), g.ints([1])], { keepdims: { i: 0 } });
    const count = g.op('Max', [g.op('ReduceSum', [keep, g.ints([1])], { keepdims: { i: 1 } }), g.scalar(1)]);
    pooled = g.op('Div', [summed, count]);
  }
  const z = g.linear(pooled, await tb.w('text.proj.w', [W, config.embedDim]));
  g.output(g.l2Normalize(z), TEXT_OUTPUT, ['batch', config.embedDim]);
  return g.encode({ 'manyfold.tower': 'text', 'manyfold.preset': config.preset });
}
