/**
 * Node's index factory: the embedded LanceDB adapter (the default on one machine) besides the runtime-neutral
 * memory and Pinecone adapters of src/index. LanceDB is a native module, so it lives here and is loaded only when
 * asked for; the edge has a factory of its own (src/edge/api.ts) that never reaches this file.
 */
import { IndexError } from '../index/errors.js';
import { MemoryIndex } from '../index/memory.js';
import { createPineconeIndex } from '../index/pinecone-factory.js';
import type { PineconeIndexOptions } from '../index/pinecone.js';
import type { IndexKind, VectorIndex } from '../index/types.js';
import type { AnnIndexType } from './lancedb.js';

export type { LanceDbIndex, LanceDbIndexOptions, AnnIndexType } from './lancedb.js';

export interface IndexConfig {
  kind: IndexKind;
  /** LanceDB data directory */
  dir?: string;
  /** LanceDB: build an ANN index once a namespace has this many rows (default 5,000) */
  annThreshold?: number;
  /** LanceDB: ANN index type (default 'hnsw_sq') */
  annIndex?: AnnIndexType;
  /** LanceDB: seconds between checks for other processes' writes (default: never) */
  readConsistencyIntervalSeconds?: number;
  pinecone?: PineconeIndexOptions;
}

export async function createIndex(config: IndexConfig): Promise<VectorIndex> {
  switch (config.kind) {
    case 'memory':
      return new MemoryIndex();
    case 'lancedb': {
      if (!config.dir) throw new IndexError('INVALID_ARGUMENT', 'index kind "lancedb" needs dir', { field: 'dir' });
      const { LanceDbIndex } = await import('./lancedb.js');
      return LanceDbIndex.open({
        dir: config.dir,
        ...(config.annThreshold !== undefined ? { annThreshold: config.annThreshold } : {}),
        ...(config.annIndex !== undefined ? { annIndex: config.annIndex } : {}),
        ...(config.readConsistencyIntervalSeconds !== undefined ? { readConsistencyIntervalSeconds: config.readConsistencyIntervalSeconds } : {}),
      });
    }
    case 'pinecone': {
      if (!config.pinecone) throw new IndexError('INVALID_ARGUMENT', 'index kind "pinecone" needs pinecone: {apiKey, host} (or pinecone.indexes)', { field: 'pinecone' });
      return createPineconeIndex(config.pinecone);
    }
    default:
      throw new IndexError('INVALID_ARGUMENT', `unknown index kind ${JSON.stringify((config as { kind: unknown }).kind)}`, { field: 'kind' });
  }
}
