import type * as tf from '@tensorflow/tfjs-core';
import type { ActivationName } from '../engine/ops.js';

/** Image tower hyper-parameters. The input resolution is part of the preset. */
export interface ImageTowerConfig {
  size: number; // input is size x size x 3
  patch: number; // square patch edge; size % patch === 0
  width: number; // transformer width
  depth: number; // number of pre-LN blocks
  heads: number;
  mlpRatio: number;
  /**
   * patch embedding: 'linear' (ViT: one linear map per patch; the default, and what artifacts without the field
   * mean) or 'conv' (two overlapping 3x3 stride-2 convolutions with GELU, then a linear map per (patch/4)^2 cell of
   * their output; same token grid, ~10% more FLOPs; see dual-encoder.ts for why)
   */
  stem?: 'linear' | 'conv';
}

/**
 * The architecture variant a ModelConfig builds. Manyfold's own presets leave it unset ('manyfold'); imported
 * pretrained CLIP checkpoints (src/model/clip/) set 'clip'. Both are one DualEncoder: serving, attacks, eval,
 * training and export never ask which, they only read `config`.
 *
 * What 'clip' changes (OpenAI CLIP / Hugging Face CLIPModel / open_clip semantics):
 * - image: no patch-embedding bias (CLIP's conv1 has none), `ln_pre` after the position embeddings, the
 *   checkpoint's pixel mean / std, and CLIPImageProcessor's resize (shortest edge, bicubic, centre crop);
 * - text: causal self-attention and no padding mask (tokens after EOT cannot reach EOT), pooling at the EOT token
 *   (`textPooling`), id 0 is an ordinary token (padding is never seen by the pooled row);
 * - MLP activation from the checkpoint's config: 'quick_gelu' (x * sigmoid(1.702 x), OpenAI's weights) or
 *   'gelu' (exact erf form); Manyfold's own models use 'gelu_tanh' (the tanh approximation, written as a sigmoid).
 */
export type Activation = ActivationName;

export interface ClipArchConfig {
  activation: Activation;
  /**
   * where the text tower pools: 'argmax' = the position of the largest id (legacy HF / OpenAI rule: EOT is the
   * largest id of CLIP's vocabulary), 'eos' = the first position whose id is `eosTokenId`
   */
  textPooling: 'argmax' | 'eos';
  eosTokenId: number;
  /** RGB pixel statistics the image tower normalises with (inside the differentiable forward pass) */
  pixelMean: [number, number, number];
  pixelStd: [number, number, number];
  /** LayerNorm epsilon of every LayerNorm in both towers (CLIP: 1e-5) */
  lnEps: number;
  /** CLIPImageProcessor's `size.shortest_edge`: images are resized so their shorter edge has this length (bicubic),
   *  then centre-cropped to image.size */
  resizeShortestEdge: number;
}

export interface TextTowerConfig {
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  maxLen: number; // tokens including BOS/EOS
  vocabSize: number; // set from the tokenizer when the model is built
}

export interface ModelConfig {
  preset: string;
  embedDim: number;
  image: ImageTowerConfig;
  text: TextTowerConfig;
  /** initial value of log(1/temperature) */
  initLogitScale: number;
  /** unset = Manyfold's own architecture; 'clip' = pretrained CLIP semantics (see ClipArchConfig) */
  family?: 'manyfold' | 'clip';
  /** required when family is 'clip' */
  clip?: ClipArchConfig;
}

/**
 * The differentiable dual encoder: what training and white-box attacks need.
 * Every output row is L2-normalised. Callers own the returned tensors (wrap calls in tf.tidy).
 */
export interface DualEncoder {
  readonly config: ModelConfig;
  /** All trainable variables by stable name (insertion order is the save order). */
  readonly variables: Map<string, tf.Variable>;
  /** x: [B,H,W,3] float32 pixels in [0,1]; mean/std normalisation happens inside -> [B,E] */
  imageTower(x: tf.Tensor4D): tf.Tensor2D;
  /** ids: [B,L] int32, 0 = padding -> [B,E] */
  textTower(ids: tf.Tensor2D): tf.Tensor2D;
  /** token + position embeddings for ids: [B,L,W] (for embedding-space text attacks) */
  embedTokens(ids: tf.Tensor2D): tf.Tensor3D;
  /** the text tower from given token embeddings ([B,L,W]); ids supply the padding mask -> [B,E] */
  textTowerFromEmbeddings(emb: tf.Tensor3D, ids: tf.Tensor2D): tf.Tensor2D;
  /** exp(logit scale), clamped to <= 100 as in CLIP */
  logitScale(): tf.Scalar;
  dispose(): void;
}

/** Text -> token ids. Never produces an out-of-vocabulary id for any input string. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly maxLen: number;
  /** ids with BOS ... EOS, truncated to maxLen, no padding */
  encode(text: string): number[];
  /** [texts.length, maxLen] int32, right-padded with 0 */
  encodeBatch(texts: string[]): Int32Array;
  /** serialisable form stored in the artifact manifest / tokenizer.json */
  toJSON(): unknown;
}
