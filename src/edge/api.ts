/**
 * The worker-safe factory shared by functions/worker.ts (Cloudflare) and functions/lambda.ts (AWS): it builds
 * the same dependencies as src/api/server.ts, but from runtime bindings instead of a data directory, and hands
 * them to the unchanged `createApp`:
 *   config    one zod schema (src/config.ts): defaults <- MANYFOLD_CONFIG (JSON) <- MANYFOLD_* variables
 *   registry  EdgeRegistry: artifacts read through callbacks (static assets, R2, S3), sha256-verified
 *   index     Pinecone (MANYFOLD_INDEX=pinecone, PINECONE_API_KEY + PINECONE_HOST) or the memory adapter,
 *             optionally loaded from a snapshot (MemoryIndex.toBinary) for small corpora
 *   store     EdgeStore over a BucketLike (R2, S3, memory)
 *   keys      MANYFOLD_API_KEYS only (no key is generated at the edge: there is nowhere to print it)
 *   logger    consoleLogger (JSON lines)
 * Node-only pieces stay out: sharp is replaced at bundle time by src/edge/sharp-shim.ts (see that file).
 */
import type { Logger } from 'pino';
import { createApp, type ManyfoldApi } from '../api/app.js';
import { parseApiKeys } from '../api/auth.js';
import { loadConfig, type ManyfoldConfig } from '../config.js';
import { MemoryIndex } from '../index/memory.js';
import type { VectorIndex } from '../index/types.js';
import type { BucketLike } from './bucket.js';
import { consoleLogger, type LevelName } from './logger.js';
import { EdgeRegistry, type EdgeModelSource } from './registry.js';
import { EdgeStore } from './store.js';

export type EdgeEnv = Record<string, unknown>;

export interface EdgeApiOptions {
  env: EdgeEnv;
  models: EdgeModelSource[];
  bucket: BucketLike;
  /** memory-index snapshot bytes (MemoryIndex.toBinary), or null for an empty index */
  snapshot?: () => Promise<Uint8Array | null>;
  logger?: Logger;
}

export interface EdgeApi {
  api: ManyfoldApi;
  config: ManyfoldConfig;
  index: VectorIndex;
  registry: EdgeRegistry;
  /** ms from the start of createEdgeApi to a ready app (model loaded and verified, index open) */
  startMs: number;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** MANYFOLD_CONFIG (JSON) + MANYFOLD_INDEX / MANYFOLD_LOG_LEVEL / MANYFOLD_BACKEND / PINECONE_* -> config */
export function edgeConfig(env: EdgeEnv): ManyfoldConfig {
  const file = str(env.MANYFOLD_CONFIG) ? (JSON.parse(str(env.MANYFOLD_CONFIG)!) as Record<string, unknown>) : {};
  const kind = str(env.MANYFOLD_INDEX);
  const apiKey = str(env.PINECONE_API_KEY);
  const host = str(env.PINECONE_HOST);
  const overrides: Record<string, unknown> = {
    ...(str(env.MANYFOLD_LOG_LEVEL) ? { server: { logLevel: env.MANYFOLD_LOG_LEVEL } } : {}),
    ...(kind || (apiKey && host) ? { index: { ...(kind ? { kind } : {}), ...(apiKey && host ? { pinecone: { apiKey, host } } : {}) } } : {}),
    ...(str(env.MANYFOLD_API_KEYS) ? { auth: { keys: env.MANYFOLD_API_KEYS } } : {}),
  };
  const e: Record<string, string | undefined> = {};
  if (str(env.MANYFOLD_BACKEND)) e.MANYFOLD_BACKEND = str(env.MANYFOLD_BACKEND);
  return loadConfig({ env: e, overrides: { ...file, ...overrides } });
}

export async function createEdgeApi(opts: EdgeApiOptions): Promise<EdgeApi> {
  const t0 = Date.now();
  const config = edgeConfig(opts.env);
  const logger = opts.logger ?? consoleLogger(config.server.logLevel as LevelName);
  if (!config.auth.keys) throw new Error('MANYFOLD_API_KEYS is not set: the edge runtimes need configured keys (key=scope+scope,...)');
  const keys = parseApiKeys(config.auth.keys);
  let index: VectorIndex;
  if (config.index.kind === 'pinecone') {
    if (!config.index.pinecone) throw new Error('MANYFOLD_INDEX=pinecone needs PINECONE_API_KEY and PINECONE_HOST');
    const { PineconeIndex } = await import('../index/pinecone.js');
    index = new PineconeIndex(config.index.pinecone);
  } else if (config.index.kind === 'memory') {
    const snap = opts.snapshot ? await opts.snapshot() : null;
    index = snap ? MemoryIndex.fromBinary(snap) : new MemoryIndex();
  } else {
    throw new Error(`index kind ${config.index.kind} is not available in this runtime (use memory or pinecone)`);
  }
  const registry = new EdgeRegistry(opts.models);
  const store = new EdgeStore(opts.bucket);
  const api = await createApp({ config, registry, index, store, logger, keys });
  return { api, config, index, registry, startMs: Date.now() - t0 };
}
