/**
 * onnxruntime-node, loaded on demand: the native inference engine Manyfold serves embeddings with when it is
 * installed (an optional dependency, like tfjs-node-gpu). Its CPU kernels (MLAS) use the machine's full vector
 * width (AVX2 / AVX-512), where tfjs's wasm backend is limited to 128-bit SIMD: on the reference 2-core machine a
 * ViT-B/32 image embedding is ~4x faster (docs/results.md). Nothing else in Manyfold needs it; training and
 * attacks run on tfjs, which has gradients.
 */
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';

let loaded: Promise<typeof Ort> | null = null;

export class OnnxUnavailableError extends Error {
  constructor(cause: unknown) {
    super(
      `the onnx inference engine needs the optional dependency onnxruntime-node, which did not load ` +
        `(${(cause as Error)?.message ?? String(cause)}). Install it with \`npm install onnxruntime-node\`, or serve with --inference tfjs`,
    );
    this.name = 'OnnxUnavailableError';
  }
}

/** the onnxruntime-node module, or OnnxUnavailableError saying how to get it */
export function loadOnnxRuntime(): Promise<typeof Ort> {
  // a computed specifier: bundlers (wrangler's esbuild for the Worker) must not try to pull a native addon in
  const specifier = ['onnxruntime', 'node'].join('-');
  loaded ??= (import(/* @vite-ignore */ specifier) as Promise<typeof Ort>).then(
    (m) => ((m as unknown as { default?: typeof Ort }).default ?? m) as typeof Ort,
    (e: unknown) => {
      loaded = null;
      throw new OnnxUnavailableError(e);
    },
  );
  return loaded;
}

export interface OnnxSessionOptions {
  /**
   * intra-op threads (default: os.availableParallelism(), every CPU this process may use. onnxruntime's own
   * default is the number of physical cores, which on a 2-vCPU VM that reports one core with two threads is 1:
   * measured there, 2 threads embed a B/32 query 1.5x faster than 1)
   */
  threads?: number;
  /** the folder that graphs' external data locations are relative to (the artifact directory) */
  externalDataFolder?: string;
  /**
   * let MatMul kernels keep a re-packed copy of each weight (faster small batches, one more copy of the weights
   * in memory); default off: serving memory stays ~1x the weights
   */
  prepack?: boolean;
}

/** one compiled graph; `run` feeds named inputs and returns the named float32 output */
export interface OnnxSession {
  run(feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }>, output: string): Promise<{ data: Float32Array; dims: number[] }>;
  release(): Promise<void>;
}

export async function createOnnxSession(model: Uint8Array, opts: OnnxSessionOptions = {}): Promise<OnnxSession> {
  const ort = await loadOnnxRuntime();
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1)) {
    throw new Error(`onnx threads must be a positive integer, got ${opts.threads}`);
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    interOpNumThreads: 1,
    intraOpNumThreads: opts.threads ?? availableParallelism(),
    // the arena keeps the largest batch's activations for reuse; fine for a server, and what makes steady-state
    // batches allocation-free
    enableCpuMemArena: true,
    extra: {
      session: {
        ...(opts.prepack ? {} : { disable_prepacking: '1' }),
        ...(opts.externalDataFolder ? { model_external_initializers_file_folder_path: opts.externalDataFolder } : {}),
      },
    },
  });
  return {
    async run(feeds, output) {
      const tensors: Record<string, Ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) {
        tensors[name] = new ort.Tensor(f.data instanceof Float32Array ? 'float32' : 'int64', f.data, f.dims);
      }
      const out = await session.run(tensors, [output]);
      const t = out[output];
      const data = t.data as Float32Array;
      const dims = [...t.dims];
      // copy out of onnxruntime's buffer, then free it
      const copy = Float32Array.from(data);
      t.dispose();
      return { data: copy, dims };
    },
    release: () => session.release(),
  };
}
