/**
 * What an index can do beyond the VectorIndex interface, asked without importing any adapter (the edge bundles
 * this module without any adapter behind it).
 */
import type { VectorIndex } from './types.js';

/**
 * Throws IndexError READ_ONLY (the API answers 409) when the index refuses writes: the memory snapshot the edge
 * runtimes serve. Call it before the first side effect of a write path, so a refused request changes nothing.
 */
export function assertIndexWritable(index: VectorIndex): void {
  (index as { assertWritable?: () => void }).assertWritable?.();
}

/**
 * Where the index keeps one backend index per embedding dimension (Pinecone with index.pinecone.indexes), resolves
 * and checks the one for `dim`, throwing IndexError DIMENSION_MISMATCH that names the config key when there is none
 * or its dimension differs. Indexes without such routing take any dimension per namespace: nothing to check here.
 */
export async function checkIndexDimensionRoute(index: VectorIndex, dim: number): Promise<void> {
  await (index as { checkDimension?: (dim: number) => Promise<void> }).checkDimension?.(dim);
}
