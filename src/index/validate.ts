/**
 * Input validation shared by every adapter. Everything that reaches a backend (SQL, HTTP, a file path) went
 * through one of these functions first.
 *
 * Namespace names: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`. Dots are allowed so a namespace can carry a model
 * version (`clip-v1.2.0`); the first character must be alphanumeric so no name is hidden (`.x`), relative
 * (`..`) or special (Pinecone's `__default__`). The set is also exactly what LanceDB accepts as a table name.
 */
import { IndexError } from './errors.js';
import type { Metadata, MetadataValue, VectorRecord } from './types.js';

export const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** metadata keys and filter field names */
export const FIELD_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_ID_LENGTH = 512;
export const MAX_DIMENSION = 20_000;
export const MAX_TOP_K = 10_000;
/** serialized metadata per record (Pinecone's limit) */
export const MAX_METADATA_BYTES = 40_960;
const FORBIDDEN_FIELDS = new Set(['__proto__', 'constructor', 'prototype']);
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const utf8 = new TextEncoder();
export function utf8Length(s: string): number {
  return utf8.encode(s).length;
}

export function validateNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
    throw new IndexError(
      'INVALID_ARGUMENT',
      `invalid namespace ${JSON.stringify(namespace)}: expected 1-64 characters from [A-Za-z0-9_.-], starting with a letter or digit`,
      { field: 'namespace' },
    );
  }
  return namespace;
}

export function validateFieldName(name: string, where: string): string {
  if (!FIELD_PATTERN.test(name) || FORBIDDEN_FIELDS.has(name)) {
    throw new IndexError(
      'INVALID_ARGUMENT',
      `invalid field name ${JSON.stringify(name)} at ${where}: expected 1-64 characters from [A-Za-z0-9_.-]`,
      { field: where },
    );
  }
  return name;
}

export function isValidFieldName(name: string): boolean {
  return FIELD_PATTERN.test(name) && !FORBIDDEN_FIELDS.has(name);
}

export function validateId(id: unknown, where: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH || CONTROL_CHARS.test(id)) {
    throw new IndexError(
      'INVALID_ARGUMENT',
      `invalid id ${JSON.stringify(id)} at ${where}: expected a string of 1-${MAX_ID_LENGTH} characters without control characters`,
      { field: where },
    );
  }
  return id;
}

export function validateIds(ids: readonly unknown[], where = 'ids'): string[] {
  if (!Array.isArray(ids)) throw new IndexError('INVALID_ARGUMENT', `${where} must be an array of strings`, { field: where });
  return ids.map((id, i) => validateId(id, `${where}[${i}]`));
}

export function validateTopK(topK: unknown): number {
  if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) {
    throw new IndexError('INVALID_ARGUMENT', `topK must be an integer in [1, ${MAX_TOP_K}], got ${String(topK)}`, {
      field: 'topK',
    });
  }
  return topK;
}

/**
 * Checks a vector (finite, non-zero, 1..MAX_DIMENSION, optionally an expected length) and returns an
 * L2-normalised Float32Array copy. The norm is accumulated in float64.
 */
export function normalizeVector(values: unknown, where: string, expectedDim?: number): Float32Array {
  if (!(values instanceof Float32Array) && !Array.isArray(values)) {
    throw new IndexError('INVALID_ARGUMENT', `${where} must be a Float32Array or an array of numbers`, { field: where });
  }
  const n = values.length;
  if (n === 0 || n > MAX_DIMENSION) {
    throw new IndexError('INVALID_ARGUMENT', `${where} has length ${n}; expected 1-${MAX_DIMENSION}`, { field: where });
  }
  if (expectedDim !== undefined && n !== expectedDim) {
    throw new IndexError('DIMENSION_MISMATCH', `${where} has dimension ${n} but the namespace has dimension ${expectedDim}`, {
      field: where,
    });
  }
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] as unknown;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new IndexError('INVALID_ARGUMENT', `${where}[${i}] is not a finite number`, { field: `${where}[${i}]` });
    }
    sq += v * v;
  }
  if (!(sq > 0)) throw new IndexError('INVALID_ARGUMENT', `${where} is a zero vector; cosine similarity is undefined`, { field: where });
  const inv = 1 / Math.sqrt(sq);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (values[i] as number) * inv;
  return out;
}

function validateMetadataValue(v: unknown, where: string): MetadataValue {
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new IndexError('INVALID_ARGUMENT', `${where} must be a finite number`, { field: where });
    return v;
  }
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      if (typeof item !== 'string') {
        throw new IndexError('INVALID_ARGUMENT', `${where}[${i}] must be a string (lists hold strings only)`, {
          field: `${where}[${i}]`,
        });
      }
    });
    return [...(v as string[])];
  }
  throw new IndexError('INVALID_ARGUMENT', `${where} must be a string, finite number, boolean or list of strings`, {
    field: where,
  });
}

/** Validates and copies metadata; `undefined` and `{}` both mean "no metadata". */
export function validateMetadata(metadata: unknown, where: string): Metadata | undefined {
  if (metadata === undefined || metadata === null) return undefined;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new IndexError('INVALID_ARGUMENT', `${where} must be an object`, { field: where });
  }
  const entries: [string, MetadataValue][] = [];
  for (const key of Object.keys(metadata)) {
    validateFieldName(key, `${where}.${key}`);
    entries.push([key, validateMetadataValue((metadata as Record<string, unknown>)[key], `${where}.${key}`)]);
  }
  if (entries.length === 0) return undefined;
  const out = Object.fromEntries(entries) as Metadata;
  const bytes = utf8Length(JSON.stringify(out));
  if (bytes > MAX_METADATA_BYTES) {
    throw new IndexError('INVALID_ARGUMENT', `${where} is ${bytes} bytes serialized; the limit is ${MAX_METADATA_BYTES}`, {
      field: where,
    });
  }
  return out;
}

export interface PreparedRecord {
  id: string;
  /** L2-normalised */
  values: Float32Array;
  metadata?: Metadata;
}

/**
 * Validates a batch for upsert: ids, vectors (normalised, one dimension for the batch, equal to `expectedDim`
 * when given), metadata. Duplicate ids collapse to their last occurrence (last write wins).
 */
export function prepareRecords(records: readonly VectorRecord[], expectedDim?: number): { records: PreparedRecord[]; dimension: number } {
  if (!Array.isArray(records)) throw new IndexError('INVALID_ARGUMENT', 'records must be an array', { field: 'records' });
  const byId = new Map<string, PreparedRecord>();
  let dim = expectedDim;
  records.forEach((r, i) => {
    const where = `records[${i}]`;
    if (r === null || typeof r !== 'object') throw new IndexError('INVALID_ARGUMENT', `${where} must be an object`, { field: where });
    const id = validateId(r.id, `${where}.id`);
    const values = normalizeVector(r.values, `${where}.values`, dim);
    dim ??= values.length;
    const metadata = validateMetadata(r.metadata, `${where}.metadata`);
    byId.delete(id); // re-insert so iteration order follows the last occurrence
    byId.set(id, metadata === undefined ? { id, values } : { id, values, metadata });
  });
  return { records: [...byId.values()], dimension: dim ?? 0 };
}
