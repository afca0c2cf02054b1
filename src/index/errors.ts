export type IndexErrorCode =
  /** a malformed argument: namespace, id, vector, metadata, topK */
  | 'INVALID_ARGUMENT'
  /** a filter outside the supported language (unknown operator, bad field name, wrong value type) */
  | 'INVALID_FILTER'
  /** vector length differs from the namespace's (or Pinecone index's) dimension */
  | 'DIMENSION_MISMATCH'
  /** the backing store failed (Pinecone after its retries, LanceDB I/O) */
  | 'BACKEND'
  /** a write to an index that only serves reads (the memory snapshot at the edge); the message names the index to configure */
  | 'READ_ONLY';

/**
 * The one error type adapters throw for caller mistakes and backend failures. `field` names the offending
 * input (e.g. `filter.genre.$regex`, `records[3].metadata.year`, `namespace`) so an API can answer 400 with it.
 */
export class IndexError extends Error {
  readonly code: IndexErrorCode;
  readonly field?: string;

  constructor(code: IndexErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IndexError';
    this.code = code;
    if (options?.field !== undefined) this.field = options.field;
  }
}

export function isIndexError(e: unknown): e is IndexError {
  return e instanceof IndexError;
}
