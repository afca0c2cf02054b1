/**
 * The worker-safe factory shared by src/cloudflare (Workers) and src/aws (Lambda): the edge's adapters, from
 * runtime bindings instead of a data directory, handed to the one composition `buildApi` (src/api/deps.ts) that
 * src/node/server.ts uses too:
 *   config    loaded by the runtime, which needs it first for its tfjs backend, with loadConfig (src/config.ts):
 *             the same layers as Node's without a file: defaults <- MANYFOLD_CONFIG (JSON) <- variables
 *   registry  ModelRegistry over a SourceCatalogue: artifacts read through callbacks (static assets, R2, S3), sha256-verified
 *   index     Pinecone (MANYFOLD_INDEX=pinecone, PINECONE_API_KEY + PINECONE_HOST, and/or index.pinecone.indexes
 *             in MANYFOLD_CONFIG for models of several dimensions), built by createPineconeIndex; or the memory
 *             adapter, loaded from a snapshot (MemoryIndex.toBinary) and READ-ONLY: every isolate / container holds
 *             its own copy, so a write would reach one copy and vanish with it. Writes (ingest, activation,
 *             re-index, probes with supplied pairs) are refused with 409 naming the index to configure.
 *   store     BucketStore over a BucketLike (R2, S3, memory)
 *   keys      MANYFOLD_API_KEYS only (configuredApiKeys: no key is generated at the edge, there is nowhere to print it)
 *   logger    consoleLogger (JSON lines)
 *   background where probes and activations run after their 202 (src/api/background.ts): the entry's queue
 *             (Cloudflare Queues, SQS), else in the isolate that took the request, kept alive by ctx.waitUntil
 * Node-only pieces stay out: sharp is replaced at bundle time by src/edge/sharp-shim.ts (see that file).
 */
import type { Logger } from 'pino';
import type { ManyfoldApi } from '../api/app.js';
import { buildApi } from '../api/deps.js';
import { edgeRunner, type BackgroundRunner } from '../api/background.js';
import { configuredApiKeys } from '../api/auth.js';
import type { ManyfoldConfig } from '../config.js';
import { createPineconeIndex } from '../index/pinecone-factory.js';
import { MemoryIndex } from '../index/memory.js';
import type { VectorIndex } from '../index/types.js';
import type { BucketLike } from './bucket.js';
import { consoleLogger, type LevelName } from './logger.js';
import type { ModelRegistry } from '../api/registry.js';
import { SourceCatalogue, type EdgeModelSources } from './registry.js';
import { BucketStore } from './store.js';

export interface EdgeApiOptions {
  /** the runtime's configuration: loadConfig over the Worker's bindings or Lambda's process.env, as on every runtime */
  config: ManyfoldConfig;
  /** fixed sources, or a discovery function (a bucket catalogue) re-read at each registry scan */
  models: EdgeModelSources;
  bucket: BucketLike;
  /** memory-index snapshot bytes (MemoryIndex.toBinary), or null for an empty index */
  snapshot?: () => Promise<Uint8Array | null>;
  logger?: Logger;
  /** the runtime's job runner (default: no queue, in-process under ctx.waitUntil) */
  background?: BackgroundRunner;
}

export interface EdgeApi {
  api: ManyfoldApi;
  config: ManyfoldConfig;
  index: VectorIndex;
  registry: ModelRegistry;
  /** ms from the start of createEdgeApi to a ready app (model loaded and verified, index open) */
  startMs: number;
}

/** What a refused write at the edge says: why the snapshot cannot take it, and which index to configure. */
export const EDGE_READ_ONLY_MESSAGE =
  'the memory index at the edge is a read-only snapshot (every Worker isolate or Lambda container holds its own copy, so a write would reach one copy ' +
  'and be lost with it): configure a shared index for ingest, activation, re-index and probes with supplied pairs: MANYFOLD_INDEX=pinecone with ' +
  'PINECONE_API_KEY and PINECONE_HOST (or index.pinecone in MANYFOLD_CONFIG; index.pinecone.indexes maps embedding dimensions to Pinecone indexes)';

export async function createEdgeApi(opts: EdgeApiOptions): Promise<EdgeApi> {
  const t0 = Date.now();
  const config = opts.config;
  const logger = opts.logger ?? consoleLogger(config.server.logLevel as LevelName);
  const keys = configuredApiKeys(config.auth.keys, 'the edge runtimes');
  const { api, index, registry } = await buildApi({
    config,
    logger,
    store: new BucketStore(opts.bucket),
    catalogue: new SourceCatalogue(opts.models),
    openIndex: (c) => openEdgeIndex(c, opts.snapshot),
    keys,
    background: opts.background ?? edgeRunner({ name: 'edge' }),
  });
  return { api, config, index, registry, startMs: Date.now() - t0 };
}

/** Pinecone (shared by every isolate / container), or the read-only memory snapshot (see EDGE_READ_ONLY_MESSAGE) */
async function openEdgeIndex(config: ManyfoldConfig, snapshot: EdgeApiOptions['snapshot']): Promise<VectorIndex> {
  if (config.index.kind === 'pinecone') {
    if (!config.index.pinecone) throw new Error('MANYFOLD_INDEX=pinecone needs PINECONE_API_KEY and PINECONE_HOST (or index.pinecone.indexes in MANYFOLD_CONFIG)');
    return createPineconeIndex(config.index.pinecone);
  }
  if (config.index.kind === 'memory') {
    const snap = snapshot ? await snapshot() : null;
    const readOnly = { readOnly: EDGE_READ_ONLY_MESSAGE };
    return snap ? MemoryIndex.fromBinary(snap, readOnly) : new MemoryIndex(readOnly);
  }
  throw new Error(`index kind ${config.index.kind} is not available in this runtime (use memory or pinecone)`);
}
