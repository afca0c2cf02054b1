/**
 * Cloudflare Workers entry (infra/wrangler.jsonc's main). Thin: the adapter (bindings, R2, Queues, static assets)
 * is src/cloudflare/worker.ts, whose header lists the bindings; the tfjs wasm binary is imported here as a module,
 * which is how wrangler and vitest-pool-workers hand workerd a compiled WebAssembly module.
 */
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm';
import { createWorker } from '../src/cloudflare/worker.js';

export type { WorkerEnv } from '../src/cloudflare/worker.js';
export default createWorker(wasmSimd);
