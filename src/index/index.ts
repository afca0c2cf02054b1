/**
 * Vector index: the `VectorIndex` contract and a factory over its adapters. The LanceDB and Pinecone adapters
 * are loaded with dynamic imports so an edge bundle using only `memory` never pulls in native or HTTP SDK code.
 */
import { IndexError } from './errors.js';
import { MemoryIndex } from './memory.js';
import type { IndexKind, VectorIndex } from './types.js';
import type { AnnIndexType } from './lancedb.js';
import type { PineconeIndexOptions } from './pinecone.js';

export * from './types.js';
export { IndexError, isIndexError, type IndexErrorCode } from './errors.js';
export { parseFilter, evaluateFilter, toPineconeFilter, type FilterNode } from './filter.js';
export { NAMESPACE_PATTERN, FIELD_PATTERN, MAX_TOP_K, validateNamespace } from './validate.js';
export { MemoryIndex, type MemorySnapshotJSON } from './memory.js';
// type-only: the adapters themselves load through createIndex (dynamic import)
export type { LanceDbIndex, LanceDbIndexOptions, AnnIndexType } from './lancedb.js';
export type { PineconeIndex, PineconeIndexOptions, RetryInfo } from './pinecone.js';
export type { PineconeRoutedIndex } from './pinecone-routed.js';
import { createPineconeIndex } from './pinecone-factory.js';
export { createPineconeIndex };

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

export { assertIndexWritable, checkIndexDimensionRoute } from './capabilities.js';
