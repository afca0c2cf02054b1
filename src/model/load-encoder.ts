/**
 * One rule for how a served model's encoder is built from its artifact, given the `inference` setting:
 * - 'tfjs': the differentiable model on the tfjs backend does everything (the only engine at the edge);
 * - 'onnx': forward passes on onnxruntime-node (model/onnx-towers.ts); the tfjs model is built only when something
 *   needs gradients (a probe's white-box attack). Fails, saying how to install it, when onnxruntime-node is missing;
 * - 'auto' (default): 'onnx' where onnxruntime-node loads, else 'tfjs'.
 */
import type { ManyfoldConfig } from '../config.js';
import { loadOnnxRuntime } from '../engine/onnx/runtime.js';
import { loadArtifact, loadArtifactTokenizer } from './artifact.js';
import { Encoder } from './encoder.js';
import { openOnnxTowers } from './onnx-towers.js';

/** config `inference` (config.ts inferenceSchema) */
export type InferenceEngine = ManyfoldConfig['inference'];

export interface LoadEncoderOptions {
  inference?: InferenceEngine;
  /** onnxruntime intra-op threads (default: os.availableParallelism()) */
  threads?: number;
  /** told once why 'auto' fell back to tfjs */
  onFallback?: (reason: string) => void;
}

/** which engine `inference` resolves to here, and why */
export async function resolveInference(inference: InferenceEngine): Promise<{ engine: 'tfjs' | 'onnx'; reason: string }> {
  if (inference === 'tfjs') return { engine: 'tfjs', reason: 'inference: tfjs' };
  try {
    await loadOnnxRuntime();
    return { engine: 'onnx', reason: inference === 'onnx' ? 'inference: onnx' : 'inference: auto, onnxruntime-node loaded' };
  } catch (e) {
    if (inference === 'onnx') throw e;
    return { engine: 'tfjs', reason: `inference: auto, onnxruntime-node unavailable (${(e as Error).message.split(' (')[0]})` };
  }
}

export async function loadEncoder(dir: string, opts: LoadEncoderOptions = {}): Promise<Encoder> {
  const { engine, reason } = await resolveInference(opts.inference ?? 'auto');
  if (engine === 'tfjs') {
    if (opts.inference === 'auto' || opts.inference === undefined) opts.onFallback?.(reason);
    const { model, tokenizer, manifest } = await loadArtifact(dir);
    return new Encoder(model, tokenizer, manifest);
  }
  const { manifest, tokenizer } = await loadArtifactTokenizer(dir);
  const towers = await openOnnxTowers(dir, manifest, opts.threads ? { threads: opts.threads } : {});
  const deferred = { config: manifest.config, load: async () => (await loadArtifact(dir)).model };
  return new Encoder(deferred, tokenizer, manifest, towers);
}
