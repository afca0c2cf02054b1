/**
 * Forward-only towers of an artifact on onnxruntime-node: what `manyfold serve` and `manyfold embed` embed with when
 * the inference engine is onnx (config `inference`, default 'auto': onnx where onnxruntime-node loads).
 *
 * The graphs (model/onnx-graph.ts) reference the artifact's weight shards as ONNX external data, so the runtime
 * maps the verified files directly: nothing is copied through a protobuf, a session starts in well under a second
 * for a ViT-B/32, and serving memory stays about one copy of the weights. The caller verifies the artifact first
 * (loadArtifact / verifyArtifact); artifacts are immutable directories.
 */
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { createOnnxSession, type OnnxSession, type OnnxSessionOptions } from '../engine/onnx/runtime.js';
import { readArtifactWeight, type ArtifactManifest } from './artifact.js';
import type { ModelConfig } from './types.js';
import { buildImageGraph, buildTextGraph, IMAGE_INPUT, IMAGE_OUTPUT, TEXT_INPUT, TEXT_OUTPUT, type WeightSource } from './onnx-graph.js';

/** The forward passes the Encoder delegates to when a native engine serves the model. */
export interface InferenceTowers {
  /** 'onnxruntime-node 1.31.1 (cpu, 2 threads)' */
  readonly description: string;
  /** pixels [count, S, S, 3] in [0, 1] -> [count * E] L2-normalised embeddings */
  imageRows(pixels: Float32Array, count: number, size: number): Promise<Float32Array>;
  /** ids [count, len] (0-padded on the right) -> [count * E] */
  textRows(ids: Int32Array, count: number, len: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export interface OnnxTowersOptions {
  /** onnxruntime intra-op threads (default: os.availableParallelism()) */
  threads?: number;
}

/** Both towers of the (verified) artifact in `dir` as onnxruntime sessions. */
export async function openOnnxTowers(dir: string, manifest: ArtifactManifest, opts: OnnxTowersOptions = {}): Promise<InferenceTowers> {
  const byName = new Map(manifest.weights.map((w) => [w.name, w]));
  const entry = (name: string) => {
    const w = byName.get(name);
    if (!w) throw new Error(`artifact ${dir} has no weight ${name} (manifest ${manifest.id})`);
    return w;
  };
  const source: WeightSource = {
    // the few weights the graph re-lays out (the conv stem of Manyfold's 'conv' preset) are read as values
    read: (name) => readArtifactWeight(dir, entry(name)),
    locate(name) {
      const w = entry(name);
      return { location: w.file, offset: w.offset, length: w.shape.reduce((a, b) => a * b, 1) * 4 };
    },
  };
  return createTowers(manifest.config, source, { externalDataFolder: path.resolve(dir), ...(opts.threads ? { threads: opts.threads } : {}) }, opts.threads);
}

/** Towers over given weights (tests: a model's variables, without an artifact). */
export async function onnxTowersFromWeights(config: ModelConfig, source: WeightSource, opts: OnnxTowersOptions = {}): Promise<InferenceTowers> {
  return createTowers(config, source, opts.threads ? { threads: opts.threads } : {}, opts.threads);
}

async function createTowers(config: ModelConfig, source: WeightSource, sessionOpts: OnnxSessionOptions, threads?: number): Promise<InferenceTowers> {
  const image = await createOnnxSession(await buildImageGraph(config, source), sessionOpts);
  let text: OnnxSession;
  try {
    text = await createOnnxSession(await buildTextGraph(config, source), sessionOpts);
  } catch (e) {
    await image.release();
    throw e;
  }
  return onnxTowers(image, text, config.embedDim, threads);
}

function onnxTowers(image: OnnxSession, text: OnnxSession, dim: number, threads?: number): InferenceTowers {
  return {
    description: `onnxruntime-node (cpu, ${threads ?? availableParallelism()} threads)`,
    async imageRows(pixels, count, size) {
      if (count === 0) return new Float32Array(0);
      const out = await image.run({ [IMAGE_INPUT]: { data: pixels, dims: [count, size, size, 3] } }, IMAGE_OUTPUT);
      checkRows(out.dims, count, dim, 'image');
      return out.data;
    },
    async textRows(ids, count, len) {
      if (count === 0) return new Float32Array(0);
      const out = await text.run({ [TEXT_INPUT]: { data: BigInt64Array.from(ids, (v) => BigInt(v)), dims: [count, len] } }, TEXT_OUTPUT);
      checkRows(out.dims, count, dim, 'text');
      return out.data;
    },
    async release() {
      await Promise.all([image.release(), text.release()]);
    },
  };
}

function checkRows(dims: number[], rows: number, dim: number, tower: string): void {
  if (dims.length !== 2 || dims[0] !== rows || dims[1] !== dim) {
    throw new Error(`onnx ${tower} tower returned [${dims.join(', ')}], expected [${rows}, ${dim}]`);
  }
}
