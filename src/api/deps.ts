/**
 * The one composition of the API for every runtime (Hono's adapter pattern): a runtime hands in its adapters (its
 * config, where items and model artifacts live, how its vector index opens, its keys, logger and job runner) and
 * gets the app. Node (src/node/server.ts: files, LanceDB) and the edge (src/edge/api.ts: buckets, Pinecone or a
 * read-only snapshot, in the Worker and in Lambda) both build through it, so the order of construction and what
 * happens when it fails are the same everywhere.
 */
import type { Logger } from 'pino';
import type { ManyfoldConfig } from '../config.js';
import type { VectorIndex } from '../index/types.js';
import { createApp, type AppDeps, type ManyfoldApi } from './app.js';
import type { ApiKeyEntry } from './auth.js';
import type { BackgroundRunner } from './background.js';
import { ModelRegistry, type ModelCatalogue } from './registry.js';
import type { Store } from './store.js';

export interface RuntimeAdapters {
  config: ManyfoldConfig;
  logger: Logger;
  /** items, blobs, state, jobs, probes */
  store: Store;
  /** where model artifacts are found and how their encoders load */
  catalogue: ModelCatalogue;
  /** opens the runtime's vector index for the config */
  openIndex(config: ManyfoldConfig): Promise<VectorIndex>;
  keys: ApiKeyEntry[];
  /** where probes and activations run after their 202 (default: in process) */
  background?: BackgroundRunner;
  hooks?: AppDeps['hooks'];
}

export interface BuiltApi {
  api: ManyfoldApi;
  index: VectorIndex;
  registry: ModelRegistry;
}

/** Opens the index, builds the registry over the catalogue and the app; an app that fails to start closes the index. */
export async function buildApi(a: RuntimeAdapters): Promise<BuiltApi> {
  const index = await a.openIndex(a.config);
  const registry = new ModelRegistry(a.catalogue);
  try {
    const api = await createApp({ config: a.config, registry, index, store: a.store, logger: a.logger, keys: a.keys, background: a.background, hooks: a.hooks });
    return { api, index, registry };
  } catch (e) {
    await index.close?.();
    throw e;
  }
}
