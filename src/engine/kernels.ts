/**
 * Kernels the tfjs wasm backend (4.22) lacks, registered for backend 'wasm'.
 *
 * - UnsortedSegmentSum: the gradient of gather (token-embedding training). Hand-written JS scatter-add,
 *   O(N * inner), float64 accumulation. (The cpu backend's own kernel is O(numSegments * N), far too slow for a
 *   vocabulary-sized numSegments, so it is not bridged.)
 * - Every other numeric kernel the cpu backend has and wasm does not (Conv2DBackpropFilter, the depthwise-conv
 *   gradients, Einsum, ...): a bridge that copies the inputs into the cpu backend, runs the cpu kernel there, and
 *   copies the outputs back to the wasm heap. Correct by construction (it *is* the cpu kernel); speed is that of
 *   the cpu backend, which is fine for these rarely used ops.
 *
 * Kernels over string/complex tensors (FFT, Complex, Real, Imag, StaticRegexReplace, Draw, Ragged*) are not
 * bridged: nothing in Manyfold uses them on wasm.
 *
 * - Slice (replaced, wasm only): a version of the stock kernel without the full read-out (see makeFastSlice).
 * - Identity (replaced, wasm only): zero-copy (shares the input's buffer by reference count, as the wasm Reshape
 *   and the cpu backend's Identity do). The stock kernel copies; tfjs runs Identity for every tensor an op saves
 *   for its gradient (engine.saveTensorsForBackwardMode clones), i.e. hundreds of full copies per train step.
 *   Safe because no wasm kernel writes into an existing buffer (outputs always come from makeOutput).
 * - GatherV2 (replaced, wasm only, axis 0 / batchDims 0 / numeric): whole rows copied with TypedArray.set. The
 *   stock kernel computes strides per element (~9 ms for 2048 token embeddings of width 128, vs ~0.2 ms).
 *
 * JS kernels on wasm read inputs with backend.readSync(dataId) and write into backend.makeOutput(shape, dtype)
 * through backend.typedArrayFromHeap(out).
 */
import * as tf from './tf.js';
import '@tensorflow/tfjs-backend-cpu';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo, DataType } from './tf.js';

/** Kernels never bridged (string/complex dtypes, or browser-only). */
const NOT_BRIDGED = new Set([
  'Complex',
  'ComplexAbs',
  'Real',
  'Imag',
  'FFT',
  'IFFT',
  'RFFT',
  'IRFFT',
  'Draw',
  'RaggedGather',
  'RaggedRange',
  'RaggedTensorToTensor',
  'StaticRegexReplace',
  'StringNGrams',
  'StringSplit',
  'StringToHashBucketFast',
  'DecodeBase64',
  'EncodeBase64',
]);

/** Minimal view of the wasm backend that JS kernels use. */
interface WasmLikeBackend {
  incRef(dataId: object): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): tf.backend_util.TypedArray;
}

/** Minimal view of the cpu backend used by the bridge. */
interface CpuLikeBackend {
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: DataType): object;
  readSync(dataId: object): tf.backend_util.BackendValues;
  disposeData(dataId: object, force?: boolean): boolean;
}

const registered = new Map<string, string[]>();

/** Names of the kernels this module registered for `backendName` (empty before registerMissingKernels). */
export function registeredKernels(backendName = 'wasm'): string[] {
  return [...(registered.get(backendName) ?? [])];
}

/**
 * Zero-copy Slice for wasm. The stock wasm Slice kernel starts with backend.readSync(x), which copies the
 * *whole* input out of the wasm heap for every slice (slicing q, k, v out of a [3, n, d] tensor copied it three
 * times). This version reads the input through a heap view. Same semantics (it delegates to the stock kernel
 * for strings and ranks > 4).
 */
function makeFastSlice(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const x = (inputs as { x: TensorInfo }).x;
    const backend = args.backend as unknown as WasmLikeBackend;
    if (x.dtype === 'string' || x.shape.length > 4) return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as unknown as tf.Tensor,
      attrs!.begin as number[],
      attrs!.size as number[],
    );
    const out = backend.makeOutput(size, x.dtype); // may grow the heap: take views afterwards
    const n = size.reduce((a, b) => a * b, 1);
    if (n === 0) return out;
    const xv = backend.typedArrayFromHeap(x);
    const ov = backend.typedArrayFromHeap(out);
    const strides = tf.util.computeStrides(x.shape);
    if (tf.slice_util.isSliceContinous(x.shape, begin, size)) {
      const off = tf.slice_util.computeFlatOffset(begin, strides);
      ov.set(xv.subarray(off, off + n));
      return out;
    }
    // copy contiguous runs: the trailing dimensions taken whole merge with the last partial one into one run
    const rank = x.shape.length;
    let lead = rank - 1; // dimensions [lead, rank) form one contiguous run
    while (lead > 0 && begin[lead] === 0 && size[lead] === x.shape[lead]) lead--;
    const inner = size.slice(lead).reduce((a, b) => a * b, 1);
    const outer = n / inner;
    const idx = new Array<number>(lead).fill(0);
    // computeStrides gives rank-1 strides (the last dimension's is 1)
    const base = begin[lead] * (lead < rank - 1 ? strides[lead] : 1);
    for (let r = 0; r < outer; r++) {
      let off = base;
      for (let k = 0; k < lead; k++) off += (begin[k] + idx[k]) * strides[k];
      ov.set(xv.subarray(off, off + inner), r * inner);
      for (let k = lead - 1; k >= 0; k--) {
        if (++idx[k] < size[k]) break;
        idx[k] = 0;
      }
    }
    return out;
  };
}

/** Row-copy GatherV2 for wasm (axis 0, batchDims 0); everything else goes to the stock kernel. */
function makeFastGather(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
    const backend = args.backend as unknown as WasmLikeBackend;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, x.shape)[0];
    const batchDims = (attrs!.batchDims as number | undefined) ?? 0;
    if (axis !== 0 || batchDims !== 0 || x.dtype === 'string' || x.dtype === 'complex64' || x.shape.length === 0) {
      return stock(args);
    }
    const idx = backend.readSync(indices.dataId) as Int32Array | Float32Array;
    const rows = x.shape[0];
    for (let i = 0; i < idx.length; i++) {
      const v = idx[i];
      if (!(v >= 0 && v <= rows - 1)) throw new Error(`GatherV2: the index value ${v} is not in [0, ${rows - 1}]`);
    }
    const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype); // views after this
    if (idx.length === 0 || inner === 0) return out;
    const xv = backend.typedArrayFromHeap(x);
    const ov = backend.typedArrayFromHeap(out);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i] * inner;
      ov.set(xv.subarray(r, r + inner), i * inner);
    }
    return out;
  };
}

/** Zero-copy Identity for wasm (strings go through the stock kernel). */
function makeSharedIdentity(stock: KernelFunc): KernelFunc {
  return (args) => {
    const x = (args.inputs as { x: TensorInfo }).x;
    if (x.dtype === 'string') return stock(args);
    (args.backend as unknown as WasmLikeBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/**
 * Register the missing kernels for `backendName` (default 'wasm'). Idempotent; never overrides a kernel the
 * backend already has. Returns the names registered by this call and earlier ones.
 */
export function registerMissingKernels(backendName = 'wasm'): string[] {
  const names = registered.get(backendName) ?? [];
  registered.set(backendName, names);
  const have = new Set(tf.getKernelsForBackend(backendName).map((k) => k.kernelName));
  const add = (cfg: KernelConfig) => {
    if (have.has(cfg.kernelName)) return;
    tf.registerKernel(cfg);
    have.add(cfg.kernelName);
    names.push(cfg.kernelName);
  };
  if (backendName === 'wasm' && !names.includes('Slice')) {
    const stock = tf.getKernel('Slice', 'wasm');
    if (stock) {
      tf.unregisterKernel('Slice', 'wasm');
      tf.registerKernel({ ...stock, kernelFunc: makeFastSlice(stock.kernelFunc) });
      names.push('Slice');
    }
  }
  if (backendName === 'wasm' && !names.includes('Identity')) {
    const stock = tf.getKernel('Identity', 'wasm');
    if (stock) {
      tf.unregisterKernel('Identity', 'wasm');
      tf.registerKernel({ ...stock, kernelFunc: makeSharedIdentity(stock.kernelFunc) });
      names.push('Identity');
    }
  }
  if (backendName === 'wasm' && !names.includes('GatherV2')) {
    const stock = tf.getKernel('GatherV2', 'wasm');
    if (stock) {
      tf.unregisterKernel('GatherV2', 'wasm');
      tf.registerKernel({ ...stock, kernelFunc: makeFastGather(stock.kernelFunc) });
      names.push('GatherV2');
    }
  }
  add({ kernelName: 'UnsortedSegmentSum', backendName, kernelFunc: unsortedSegmentSumKernel as unknown as KernelFunc });
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (NOT_BRIDGED.has(k.kernelName) || have.has(k.kernelName)) continue;
    add({ kernelName: k.kernelName, backendName, kernelFunc: makeCpuBridge(k.kernelName) });
  }
  return [...names];
}

/** UnsortedSegmentSum on any backend with readSync/makeOutput/typedArrayFromHeap (the wasm backend). */
function unsortedSegmentSumKernel(args: {
  inputs: { x: TensorInfo; segmentIds: TensorInfo };
  backend: WasmLikeBackend;
  attrs: NamedAttrMap;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, segmentIds } = inputs;
  const numSegments = attrs.numSegments as number;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`);
  }
  const segRank = segmentIds.shape.length;
  for (let i = 0; i < segRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(
        `UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
      );
    }
  }
  const n = segmentIds.shape.reduce((a, b) => a * b, 1);
  const innerShape = x.shape.slice(segRank);
  const inner = innerShape.reduce((a, b) => a * b, 1);
  const xv = backend.readSync(x.dataId) as Float32Array | Int32Array;
  const ids = backend.readSync(segmentIds.dataId) as Int32Array | Float32Array;
  const acc = new Float64Array(numSegments * inner);
  for (let r = 0; r < n; r++) {
    const s = ids[r];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const o = s * inner;
    const xo = r * inner;
    for (let j = 0; j < inner; j++) acc[o + j] += xv[xo + j];
  }
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  const outV = backend.typedArrayFromHeap(out);
  if (x.dtype === 'int32') for (let i = 0; i < acc.length; i++) outV[i] = Math.trunc(acc[i]);
  else outV.set(acc);
  return out;
}

/** A kernel that runs the cpu backend's implementation of `kernelName` on copies of the inputs. */
export function makeCpuBridge(kernelName: string): KernelFunc {
  return (args) => {
    const cpuKernel = tf.getKernel(kernelName, 'cpu');
    if (!cpuKernel) throw new Error(`cpu kernel ${kernelName} not registered`);
    const cpu = tf.engine().findBackend('cpu') as unknown as CpuLikeBackend | null;
    if (!cpu) throw new Error(`cpu backend unavailable: cannot run bridged kernel ${kernelName}`);
    const backend = args.backend as unknown as WasmLikeBackend;
    const cpuInputs: Record<string, TensorInfo> = {};
    const created = new Set<object>();
    try {
      for (const [name, t] of Object.entries(args.inputs)) {
        if (t == null) continue;
        const vals = backend.readSync(t.dataId);
        const dataId = cpu.write(vals, t.shape, t.dtype);
        created.add(dataId);
        cpuInputs[name] = { dataId, shape: t.shape, dtype: t.dtype };
      }
      const res = cpuKernel.kernelFunc({
        inputs: cpuInputs,
        attrs: args.attrs,
        backend: cpu as unknown as tf.KernelBackend,
      });
      const outs = Array.isArray(res) ? res : [res];
      const results = outs.map((o) => {
        const vals = cpu.readSync(o.dataId);
        created.add(o.dataId);
        const out = backend.makeOutput(o.shape, o.dtype);
        if (o.dtype === 'string') throw new Error(`bridged kernel ${kernelName}: string outputs unsupported`);
        backend.typedArrayFromHeap(out).set(vals as tf.backend_util.TypedArray);
        return out;
      });
      return Array.isArray(res) ? results : results[0];
    } finally {
      for (const id of created) cpu.disposeData(id, true);
    }
  };
}

/** Minimal view of the webgpu backend used by the AddN replacement. */
interface WebgpuLikeBackend {
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
  disposeData(dataId: object, force?: boolean): boolean;
}

/**
 * Kernel fixes for backend 'webgpu' (tfjs-backend-webgpu 4.22). Idempotent; returns the names replaced.
 *
 * - AddN (replaced): the stock kernel binds every input as a storage buffer of one shader, so more than
 *   `maxStorageBuffersPerShaderStage - 1` inputs (7 at WebGPU's default limit, which tfjs does not raise) is a
 *   pipeline validation error: the output buffer is never written and the result is whatever that pooled buffer
 *   held before (seen as a global gradient norm of 0, then equal to the previous step's logit scale). The
 *   trainer's global norm sums one term per variable (85 for the tiny preset). This version sums in chunks that
 *   fit the limit, then sums the partial sums; tfjs's own Concat splits its inputs the same way.
 */
export function registerWebgpuKernels(): string[] {
  const backendName = 'webgpu';
  const names = registered.get(backendName) ?? [];
  registered.set(backendName, names);
  if (!names.includes('AddN')) {
    const stock = tf.getKernel('AddN', backendName);
    if (stock) {
      tf.unregisterKernel('AddN', backendName);
      tf.registerKernel({ ...stock, kernelFunc: makeChunkedAddN(stock.kernelFunc) });
      names.push('AddN');
    }
  }
  return [...names];
}

function makeChunkedAddN(stock: KernelFunc): KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WebgpuLikeBackend;
    const maxInputs = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    let level = args.inputs as unknown as TensorInfo[];
    const made: TensorInfo[] = []; // partial sums this kernel created (freed at the end)
    while (level.length > maxInputs) {
      const next: TensorInfo[] = [];
      for (let i = 0; i < level.length; i += maxInputs) {
        const chunk = level.slice(i, i + maxInputs);
        if (chunk.length === 1) {
          next.push(chunk[0]);
          continue;
        }
        const partial = stock({ ...args, inputs: chunk as unknown as tf.NamedTensorInfoMap }) as TensorInfo;
        made.push(partial);
        next.push(partial);
      }
      level = next;
    }
    const out = stock({ ...args, inputs: level as unknown as tf.NamedTensorInfoMap });
    for (const t of made) backend.disposeData(t.dataId);
    return out;
  };
}
