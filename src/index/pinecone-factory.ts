/**
 * Pinecone as the index: one index, or one per embedding dimension (index.pinecone.indexes). Every runtime's
 * index factory builds it through here (src/node/indexes.ts, src/edge/api.ts).
 */
import type { PineconeIndexOptions } from './pinecone.js';
import type { VectorIndex } from './types.js';

export async function createPineconeIndex(options: PineconeIndexOptions): Promise<VectorIndex> {
  if (Object.keys(options.indexes ?? {}).length > 0) {
    const { PineconeRoutedIndex } = await import('./pinecone-routed.js');
    return new PineconeRoutedIndex(options);
  }
  const { PineconeIndex } = await import('./pinecone.js');
  return new PineconeIndex(options);
}
