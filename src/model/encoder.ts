/**
 * The inference-side encoder used by evaluation, indexing and the API: text and RGB images in, L2-normalised
 * float32 embeddings out. It wraps a differentiable DualEncoder (reachable as `model` for white-box attacks and
 * training) and a Tokenizer, batches inputs, and runs every batch inside tf.tidy so that no tensor outlives a
 * call (tf.memory().numTensors is the same before and after each method).
 *
 * A served encoder may also hold forward-only native towers (`towers`, model/onnx-towers.ts): the `*Async`
 * methods (`embedTextsMatrixAsync`, `embedImagesMatrixAsync`) then run on them, and the differentiable model is loaded
 * only when something needs gradients (`await differentiable()`, e.g. a probe's attack), so a server that only
 * embeds holds one copy of the weights.
 */
import { tf } from '../engine/tf.js';
import { takeData } from '../engine/read.js';
import type { InferenceTowers } from './onnx-towers.js';
import type { DualEncoder, ModelConfig, Tokenizer } from './types.js';
import { embedTextRows, embedTextRowsWith } from './text-rows.js';

/** The parts of an artifact manifest the encoder reports (see artifact.ts). */
export interface EncoderManifestInfo {
  id: string;
}

/** a differentiable model that is built when first needed (from the same verified artifact) */
export interface DeferredModel {
  config: ModelConfig;
  load(): Promise<DualEncoder>;
}

export class Encoder {
  /** embedding dimension E */
  readonly dim: number;
  /** the model version: the artifact id, or 'unversioned' for a model not loaded from an artifact */
  readonly version: string;
  /** image edge S expected by embedImages (pixels are N x S x S x 3) */
  readonly imageSize: number;
  readonly config: ModelConfig;
  private loadedModel: DualEncoder | null;
  private loading: Promise<DualEncoder> | null = null;
  private readonly deferred: DeferredModel | null;
  private released = false;

  constructor(
    model: DualEncoder | DeferredModel,
    readonly tokenizer: Tokenizer,
    readonly manifest?: EncoderManifestInfo,
    /** forward-only native towers for the async embedding methods */
    readonly towers?: InferenceTowers,
  ) {
    const isLoaded = 'imageTower' in model;
    this.loadedModel = isLoaded ? model : null;
    this.deferred = isLoaded ? null : model;
    this.config = model.config;
    this.dim = model.config.embedDim;
    this.imageSize = model.config.image.size;
    this.version = manifest?.id ?? 'unversioned';
    if (tokenizer.vocabSize > model.config.text.vocabSize) {
      throw new Error(`Encoder: tokenizer vocabSize ${tokenizer.vocabSize} exceeds the model's ${model.config.text.vocabSize}`);
    }
    if (tokenizer.maxLen > model.config.text.maxLen) {
      throw new Error(`Encoder: tokenizer maxLen ${tokenizer.maxLen} exceeds the model's ${model.config.text.maxLen}`);
    }
  }

  /** which engine the async embedding methods use */
  get engine(): string {
    return this.towers ? this.towers.description : 'tfjs';
  }

  /** the differentiable model; throws if it is deferred and not loaded yet (use `differentiable()`) */
  get model(): DualEncoder {
    if (!this.loadedModel) {
      throw new Error(`Encoder ${this.version}: the differentiable model is not loaded yet (it is built on first need: await encoder.differentiable())`);
    }
    return this.loadedModel;
  }

  /** the differentiable model, built now if it was deferred */
  async differentiable(): Promise<DualEncoder> {
    if (this.loadedModel) return this.loadedModel;
    if (this.released) throw new Error(`Encoder ${this.version} has been disposed`);
    this.loading ??= this.deferred!.load().then(
      (m) => {
        if (this.released) {
          m.dispose();
          throw new Error(`Encoder ${this.version} has been disposed`);
        }
        this.loadedModel = m;
        return m;
      },
      (e: unknown) => {
        this.loading = null;
        throw e;
      },
    );
    return this.loading;
  }

  /** frees the model's tensors and the native towers */
  async dispose(): Promise<void> {
    this.released = true;
    this.loadedModel?.dispose();
    this.loadedModel = null;
    await this.towers?.release();
  }

  /** embedTextsMatrix on the native towers when there are any (else the same as embedTextsMatrix) */
  async embedTextsMatrixAsync(texts: readonly string[], batch = 256): Promise<Float32Array> {
    checkBatch(batch);
    if (this.towers) return embedTextRowsWith(this.towers, this.dim, this.tokenizer, texts, batch);
    return this.embedTextsMatrix(texts, batch);
  }

  /** embedImagesMatrix on the native towers when there are any (else the same as embedImagesMatrix) */
  async embedImagesMatrixAsync(pixels: Uint8Array | Float32Array, count: number, batch = 64): Promise<Float32Array> {
    checkBatch(batch);
    if (!this.towers) return this.embedImagesMatrix(pixels, count, batch);
    const per = this.checkPixels(pixels, count);
    const out = new Float32Array(count * this.dim);
    for (let start = 0; start < count; start += batch) {
      const b = Math.min(batch, count - start);
      const slice = pixels.subarray(start * per, (start + b) * per);
      const x = slice instanceof Uint8Array ? Float32Array.from(slice, (v) => v / 255) : (slice as Float32Array);
      out.set(await this.towers.imageRows(x, b, this.imageSize), start * this.dim);
    }
    return out;
  }

  private checkPixels(pixels: Uint8Array | Float32Array, count: number): number {
    const S = this.imageSize;
    const per = S * S * 3;
    if (!Number.isInteger(count) || count < 0) throw new Error(`embedImages: count must be a non-negative integer, got ${count}`);
    if (pixels.length !== count * per) {
      throw new Error(`embedImages: expected ${count} x ${S} x ${S} x 3 = ${count * per} values, got ${pixels.length}`);
    }
    return per;
  }

  /**
   * Texts -> one row-major Float32Array [texts.length * dim] (grouped by token length: no work on padding), on
   * the differentiable tfjs model (the numbers white-box attacks see). Async: each batch is read back with
   * `await data()`, the only read Dawn (webgpu) allows in Node.
   */
  async embedTextsMatrix(texts: readonly string[], batch = 256): Promise<Float32Array> {
    checkBatch(batch);
    return embedTextRows(this.model, this.tokenizer, texts, batch);
  }

  /** Texts -> one Float32Array of length dim per text. */
  async embedTexts(texts: readonly string[], batch = 256): Promise<Float32Array[]> {
    return splitRows(await this.embedTextsMatrix(texts, batch), texts.length, this.dim);
  }

  /**
   * Images -> one row-major Float32Array [count * dim].
   * pixels: RGB, row-major [count, S, S, 3]; Uint8Array in 0..255 (divided by 255 here), or Float32Array
   * already in [0, 1] (e.g. an adversarial image). On the tfjs model; async as embedTextsMatrix.
   */
  async embedImagesMatrix(pixels: Uint8Array | Float32Array, count: number, batch = 64): Promise<Float32Array> {
    checkBatch(batch);
    const S = this.imageSize;
    const per = this.checkPixels(pixels, count);
    const E = this.dim;
    const out = new Float32Array(count * E);
    const isBytes = pixels instanceof Uint8Array;
    for (let start = 0; start < count; start += batch) {
      const b = Math.min(batch, count - start);
      const slice = pixels.subarray(start * per, (start + b) * per);
      const emb = tf.tidy(() => {
        let x: tf.Tensor4D;
        if (isBytes) {
          x = tf.div(tf.tensor4d(Float32Array.from(slice), [b, S, S, 3], 'float32'), 255) as tf.Tensor4D;
        } else {
          x = tf.tensor4d(slice as Float32Array, [b, S, S, 3], 'float32');
        }
        const e = this.model.imageTower(x);
        checkOutput(e.shape, b, E, 'imageTower');
        return e;
      });
      out.set(await takeData(emb), start * E);
    }
    return out;
  }

  /** Images -> one Float32Array of length dim per image (see embedImagesMatrix for the pixel format). */
  async embedImages(pixels: Uint8Array | Float32Array, count: number, batch = 64): Promise<Float32Array[]> {
    return splitRows(await this.embedImagesMatrix(pixels, count, batch), count, this.dim);
  }
}

/**
 * Similarity matrix of L2-normalised embeddings: sims[i * nTexts + t] = <image_i, text_t>, row-major
 * [nImages, nTexts], computed in float64 accumulation per entry (no tensors).
 */
export function similarityMatrix(images: Float32Array, texts: Float32Array, dim: number): Float32Array {
  if (images.length % dim !== 0 || texts.length % dim !== 0) {
    throw new Error(`similarityMatrix: embedding lengths ${images.length}, ${texts.length} are not multiples of dim ${dim}`);
  }
  const nI = images.length / dim;
  const nT = texts.length / dim;
  const out = new Float32Array(nI * nT);
  for (let i = 0; i < nI; i++) {
    const io = i * dim;
    for (let t = 0; t < nT; t++) {
      const to = t * dim;
      let s = 0;
      for (let k = 0; k < dim; k++) s += images[io + k] * texts[to + k];
      out[i * nT + t] = s;
    }
  }
  return out;
}

function splitRows(m: Float32Array, n: number, dim: number): Float32Array[] {
  const rows: Float32Array[] = new Array(n);
  // copies, so each row owns its own buffer (safe to transfer or hand to an index client)
  for (let i = 0; i < n; i++) rows[i] = m.slice(i * dim, (i + 1) * dim);
  return rows;
}

function checkBatch(batch: number): void {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`Encoder: batch must be a positive integer, got ${batch}`);
}

function checkOutput(shape: number[], rows: number, dim: number, tower: string): void {
  if (shape.length !== 2 || shape[0] !== rows || shape[1] !== dim) {
    throw new Error(`Encoder: ${tower} returned shape [${shape.join(', ')}], expected [${rows}, ${dim}]`);
  }
}
