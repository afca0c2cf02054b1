/**
 * Vector index: the `VectorIndex` contract and its runtime-neutral adapters (memory; Pinecone, loaded through
 * createPineconeIndex's dynamic import so a bundle using only `memory` never pulls in the SDK). Each runtime has its
 * own index factory over them: Node's (src/node/indexes.ts) adds the embedded LanceDB adapter, the edge's
 * (src/edge/api.ts) a read-only memory snapshot.
 */

export * from './types.js';
export { IndexError, isIndexError, type IndexErrorCode } from './errors.js';
export { parseFilter, evaluateFilter, toPineconeFilter, type FilterNode } from './filter.js';
export { NAMESPACE_PATTERN, FIELD_PATTERN, MAX_TOP_K, validateNamespace } from './validate.js';
export { MemoryIndex, type MemorySnapshotJSON } from './memory.js';
// type-only: the Pinecone adapter loads through createPineconeIndex (dynamic import)
export type { PineconeIndex, PineconeIndexOptions, RetryInfo } from './pinecone.js';
export type { PineconeRoutedIndex } from './pinecone-routed.js';
import { createPineconeIndex } from './pinecone-factory.js';
export { createPineconeIndex };

export { assertIndexWritable, checkIndexDimensionRoute } from './capabilities.js';
