/**
 * tfjs backend for workerd (and other runtimes without a filesystem).
 *
 * workerd forbids compiling WebAssembly from bytes at run time: a .wasm binary must be imported as a module
 * (the bundler turns `import m from '...wasm'` into a WebAssembly.Module). tfjs-backend-wasm 4.22 only lets a
 * caller replace how the binary is *fetched* (`setWasmPaths(path, usePlatformFetch = true)`), after which it
 * calls `WebAssembly.instantiate(bytes, imports)`. So for the duration of the init we (1) answer tfjs's fetch
 * of a sentinel path with an empty body and (2) route that one `WebAssembly.instantiate(bytes, imports)` call
 * to `WebAssembly.instantiate(bundledModule, imports)`. Nothing is fetched from a network or read from disk.
 *
 * 'cpu' is the pure-JS backend: no wasm at all, slower (see STACK.md), always available.
 * The choice and the reason are returned (and reported by the Worker's /ready and by the bench).
 */
import * as tf from '../engine/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { silenceCpuBanner } from '../engine/backend.js';

export interface EdgeBackendInfo {
  name: 'wasm' | 'cpu';
  reason: string;
  initMs: number;
}

const SENTINEL = 'manyfold-bundled://tfjs-backend-wasm-simd.wasm';
let active: Promise<EdgeBackendInfo> | undefined;

export function initEdgeBackend(kind: 'wasm' | 'cpu' | 'auto', wasmModule?: WebAssembly.Module): Promise<EdgeBackendInfo> {
  active ??= select(kind, wasmModule);
  return active;
}

async function select(kind: 'wasm' | 'cpu' | 'auto', wasmModule?: WebAssembly.Module): Promise<EdgeBackendInfo> {
  const t0 = Date.now();
  silenceCpuBanner();
  if (kind !== 'cpu' && wasmModule) {
    try {
      await activateBundledWasm(wasmModule);
      return { name: 'wasm', reason: `${kind === 'auto' ? 'auto' : "requested 'wasm'"}: tfjs-backend-wasm (SIMD, single thread) from the bundled module`, initMs: Date.now() - t0 };
    } catch (e) {
      if (kind === 'wasm') throw new Error(`wasm backend failed in this runtime: ${(e as Error).message ?? String(e)}`);
      await setCpu();
      return { name: 'cpu', reason: `auto: chose cpu because the bundled wasm failed (${(e as Error).message ?? String(e)})`, initMs: Date.now() - t0 };
    }
  }
  if (kind === 'wasm') throw new Error("backend 'wasm' needs the tfjs-backend-wasm module bundled (none was passed)");
  await setCpu();
  return { name: 'cpu', reason: kind === 'cpu' ? "requested 'cpu' (pure JS)" : 'auto: chose cpu because no wasm module is bundled', initMs: Date.now() - t0 };
}

async function setCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') failed");
  await tf.ready();
}

async function activateBundledWasm(mod: WebAssembly.Module): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
  // every name must be mapped (tfjs validates the map); threads are off, so only the SIMD build is instantiated
  wasm.setWasmPaths({ 'tfjs-backend-wasm-simd.wasm': SENTINEL, 'tfjs-backend-wasm.wasm': SENTINEL, 'tfjs-backend-wasm-threaded-simd.wasm': SENTINEL }, true);
  const platform = tf.env().platform as unknown as { fetch: (p: string, init?: unknown) => Promise<Response> };
  const origFetch = platform.fetch.bind(platform);
  const W = WebAssembly as unknown as { instantiate: (src: unknown, imports?: unknown) => Promise<unknown> };
  const origInstantiate = W.instantiate;
  platform.fetch = (p: string, init?: unknown) => (p === SENTINEL ? Promise.resolve(new Response(new Uint8Array([0x4d, 0x46]))) : origFetch(p, init));
  W.instantiate = (src: unknown, imports?: unknown) => {
    if (src instanceof ArrayBuffer && src.byteLength === 2) {
      return (origInstantiate.call(WebAssembly, mod, imports) as Promise<WebAssembly.Instance>).then((instance) => ({ instance, module: mod }));
    }
    return origInstantiate.call(WebAssembly, src, imports);
  };
  try {
    const { registerMissingKernels } = await import('../engine/kernels.js');
    registerMissingKernels();
    if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') returned false");
    await tf.ready();
  } finally {
    platform.fetch = origFetch;
    W.instantiate = origInstantiate;
  }
}
