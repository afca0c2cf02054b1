/**
 * The VectorIndex contract shared by every adapter (memory, LanceDB, Pinecone).
 *
 * Semantics every adapter guarantees (checked by test/index/contract.ts):
 * - `score` is the cosine similarity between the query and the stored vector, in [-1, 1], results sorted by
 *   descending score. The encoder emits L2-normalised vectors, but adapters do NOT rely on that: every vector
 *   is L2-normalised on the way in (upsert and query), so the score is the cosine even for raw vectors, and
 *   `fetch` returns the normalised copy. Zero, non-finite or wrongly sized vectors are rejected.
 * - Upsert is idempotent by id: writing an id again replaces its vector and its whole metadata object (no
 *   merge of old keys). Within one call, the last record with a given id wins.
 * - A namespace's dimension is fixed by its first upsert; later upserts or queries with another dimension fail
 *   with `IndexError` code `DIMENSION_MISMATCH` (on Pinecone the dimension is fixed per index, not namespace).
 * - Querying a namespace that does not exist (or is empty) returns `[]`.
 * - Filters use a validated subset of Pinecone's filter language (see `filter.ts`); metadata values are
 *   string | finite number | boolean | string[].
 * - Namespace names match `NAMESPACE_PATTERN` (see `validate.ts`).
 */

export type MetadataValue = string | number | boolean | string[];
export type Metadata = Record<string, MetadataValue>;

export interface VectorRecord {
  id: string;
  values: Float32Array | number[];
  metadata?: Metadata;
}

/** A filter as callers write it (Pinecone syntax); validated by `parseFilter` before it reaches an adapter. */
export type FilterInput = Record<string, unknown>;

export interface QueryOptions {
  /** 1..MAX_TOP_K (10,000); fewer results come back when fewer records match. */
  topK: number;
  filter?: FilterInput;
  /** default false */
  includeMetadata?: boolean;
}

export interface QueryMatch {
  id: string;
  /** cosine similarity */
  score: number;
  metadata?: Metadata;
}

export interface FetchedRecord {
  id: string;
  /** the stored (L2-normalised) vector */
  values: Float32Array;
  metadata?: Metadata;
}

export interface NamespaceStats {
  count: number;
  /** undefined while the namespace has never been written (Pinecone: the index dimension) */
  dimension?: number;
}

export interface VectorIndex {
  readonly kind: string;
  upsert(namespace: string, records: readonly VectorRecord[]): Promise<void>;
  query(namespace: string, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]>;
  /** Records that exist, in the order of `ids` (duplicates collapsed); unknown ids are skipped. */
  fetch?(namespace: string, ids: readonly string[]): Promise<FetchedRecord[]>;
  /** Unknown ids are ignored. */
  delete(namespace: string, ids: readonly string[]): Promise<void>;
  stats(namespace: string): Promise<NamespaceStats>;
  /** Sorted. Whether a namespace emptied by `delete` is still listed is adapter-defined. */
  listNamespaces(): Promise<string[]>;
  /** Removes the namespace and all its records; dropping an unknown namespace is not an error. */
  dropNamespace(namespace: string): Promise<void>;
  close?(): Promise<void>;
}

export type IndexKind = 'memory' | 'lancedb' | 'pinecone';
