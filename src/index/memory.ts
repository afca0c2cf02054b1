/**
 * In-memory exact-search adapter. Runtime-agnostic (no Node imports): usable in a Cloudflare Worker or a
 * Lambda that loads a snapshot from an asset. Each namespace is one contiguous Float32Array matrix of
 * L2-normalised rows, so a query is one pass of dot products (10k x 128 ~ 1-2 ms in V8) plus a bounded heap.
 *
 * Snapshots: `toJSON()`/`MemoryIndex.fromJSON()` (vectors base64, little-endian float32) and
 * `toBinary()`/`MemoryIndex.fromBinary()` (compact: magic "MFVI", u32 version, u32 header length, JSON header,
 * padding to 4 bytes, then each namespace's float32 LE matrix). Both validate everything they load.
 * `readOnly` (the edge's snapshot): every write throws IndexError READ_ONLY with the given message.
 */
import { IndexError } from './errors.js';
import { evaluateFilter, parseFilter } from './filter.js';
import { TopK, dot } from './topk.js';
import type { FetchedRecord, Metadata, NamespaceStats, QueryMatch, QueryOptions, VectorIndex, VectorRecord } from './types.js';
import { normalizeVector, prepareRecords, validateId, validateIds, validateMetadata, validateNamespace, validateTopK } from './validate.js';

class Store {
  ids: string[] = [];
  rowOf = new Map<string, number>();
  meta: (Metadata | undefined)[] = [];
  data: Float32Array;

  constructor(readonly dim: number, capacity = 64) {
    this.data = new Float32Array(dim * capacity);
  }

  get size(): number {
    return this.ids.length;
  }

  private ensureCapacity(rows: number): void {
    if (rows * this.dim <= this.data.length) return;
    let cap = Math.max(64, this.data.length / this.dim);
    while (cap < rows) cap *= 2;
    const next = new Float32Array(cap * this.dim);
    next.set(this.data.subarray(0, this.size * this.dim));
    this.data = next;
  }

  put(id: string, values: Float32Array, metadata: Metadata | undefined): void {
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.size;
      this.ensureCapacity(row + 1);
      this.ids.push(id);
      this.meta.push(metadata);
      this.rowOf.set(id, row);
    } else {
      this.meta[row] = metadata;
    }
    this.data.set(values, row * this.dim);
  }

  remove(id: string): void {
    const row = this.rowOf.get(id);
    if (row === undefined) return;
    const last = this.size - 1;
    if (row !== last) {
      const lastId = this.ids[last];
      this.ids[row] = lastId;
      this.meta[row] = this.meta[last];
      this.data.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      this.rowOf.set(lastId, row);
    }
    this.ids.pop();
    this.meta.pop();
    this.rowOf.delete(id);
  }

  vector(row: number): Float32Array {
    return this.data.slice(row * this.dim, (row + 1) * this.dim);
  }
}

export interface MemorySnapshotJSON {
  format: 'manyfold.memory-index';
  version: 1;
  namespaces: { name: string; dimension: number; ids: string[]; metadata: (Metadata | null)[]; vectors: string }[];
}

const MAGIC = [0x4d, 0x46, 0x56, 0x49]; // "MFVI"

function cloneMetadata(m: Metadata | undefined): Metadata | undefined {
  if (m === undefined) return undefined;
  const out: Metadata = {};
  for (const [k, v] of Object.entries(m)) out[k] = Array.isArray(v) ? [...v] : v;
  return out;
}

function floatsToBytes(src: Float32Array): Uint8Array {
  const out = new Uint8Array(src.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < src.length; i++) view.setFloat32(i * 4, src[i], true);
  return out;
}

function bytesToFloats(src: Uint8Array, offset: number, count: number): Float32Array {
  const view = new DataView(src.buffer, src.byteOffset + offset, count * 4);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function snapshotError(message: string): IndexError {
  return new IndexError('INVALID_ARGUMENT', `invalid memory-index snapshot: ${message}`, { field: 'snapshot' });
}

export interface MemoryIndexOptions {
  /**
   * Refuse every write (upsert, delete, dropNamespace) with IndexError READ_ONLY carrying this message. The edge
   * runtimes serve a snapshot this way: each Worker isolate / Lambda container holds its own copy, so a write
   * would be seen by one copy only and lost with it; the message says which shared index to configure instead.
   */
  readOnly?: string;
}

export class MemoryIndex implements VectorIndex {
  readonly kind = 'memory';
  private readonly stores = new Map<string, Store>();
  /** why writes are refused, when they are (see MemoryIndexOptions.readOnly) */
  readonly readOnly?: string;

  constructor(options: MemoryIndexOptions = {}) {
    if (options.readOnly !== undefined) this.readOnly = options.readOnly;
  }

  /** throws IndexError READ_ONLY when this index refuses writes */
  assertWritable(): void {
    if (this.readOnly !== undefined) throw new IndexError('READ_ONLY', this.readOnly, { field: 'index.kind' });
  }

  async upsert(namespace: string, records: readonly VectorRecord[]): Promise<void> {
    this.assertWritable();
    validateNamespace(namespace);
    const existing = this.stores.get(namespace);
    const { records: prepared, dimension } = prepareRecords(records, existing?.dim);
    if (prepared.length === 0) return;
    const store = existing ?? new Store(dimension, Math.max(64, prepared.length));
    for (const r of prepared) store.put(r.id, r.values, r.metadata);
    if (!existing) this.stores.set(namespace, store);
  }

  async query(namespace: string, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    validateNamespace(namespace);
    const topK = validateTopK(options?.topK);
    const filter = parseFilter(options.filter);
    const store = this.stores.get(namespace);
    const q = normalizeVector(vector, 'vector', store?.dim);
    if (!store || store.size === 0) return [];
    const { dim, data, meta } = store;
    const heap = new TopK(topK);
    for (let row = 0, n = store.size; row < n; row++) {
      if (filter && !evaluateFilter(filter, meta[row])) continue;
      heap.push(dot(data, row * dim, q, dim), row);
    }
    return heap.sorted().map(({ row, score }) => {
      const match: QueryMatch = { id: store.ids[row], score };
      if (options.includeMetadata && meta[row] !== undefined) match.metadata = cloneMetadata(meta[row]);
      return match;
    });
  }

  async fetch(namespace: string, ids: readonly string[]): Promise<FetchedRecord[]> {
    validateNamespace(namespace);
    const wanted = validateIds(ids);
    const store = this.stores.get(namespace);
    if (!store) return [];
    const out: FetchedRecord[] = [];
    for (const id of new Set(wanted)) {
      const row = store.rowOf.get(id);
      if (row === undefined) continue;
      const rec: FetchedRecord = { id, values: store.vector(row) };
      if (store.meta[row] !== undefined) rec.metadata = cloneMetadata(store.meta[row]);
      out.push(rec);
    }
    return out;
  }

  async delete(namespace: string, ids: readonly string[]): Promise<void> {
    this.assertWritable();
    validateNamespace(namespace);
    const valid = validateIds(ids);
    const store = this.stores.get(namespace);
    if (!store) return;
    for (const id of valid) store.remove(id);
  }

  async stats(namespace: string): Promise<NamespaceStats> {
    validateNamespace(namespace);
    const store = this.stores.get(namespace);
    return store ? { count: store.size, dimension: store.dim } : { count: 0 };
  }

  async listNamespaces(): Promise<string[]> {
    return [...this.stores.keys()].sort();
  }

  async dropNamespace(namespace: string): Promise<void> {
    this.assertWritable();
    validateNamespace(namespace);
    this.stores.delete(namespace);
  }

  async close(): Promise<void> {
    this.stores.clear();
  }

  // ---- snapshots -------------------------------------------------------------------------------------------

  toJSON(): MemorySnapshotJSON {
    return {
      format: 'manyfold.memory-index',
      version: 1,
      namespaces: [...this.stores.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, s]) => ({
          name,
          dimension: s.dim,
          ids: [...s.ids],
          metadata: s.meta.map((m) => m ?? null),
          vectors: toBase64(floatsToBytes(s.data.subarray(0, s.size * s.dim))),
        })),
    };
  }

  static fromJSON(json: unknown, options: MemoryIndexOptions = {}): MemoryIndex {
    const snap = json as Partial<MemorySnapshotJSON> | null;
    if (!snap || snap.format !== 'manyfold.memory-index' || snap.version !== 1 || !Array.isArray(snap.namespaces)) {
      throw snapshotError('expected {format: "manyfold.memory-index", version: 1, namespaces: [...]}');
    }
    const index = new MemoryIndex(options);
    for (const ns of snap.namespaces) {
      let bytes: Uint8Array;
      try {
        bytes = fromBase64(String(ns.vectors));
      } catch {
        throw snapshotError(`namespace ${JSON.stringify(ns.name)}: vectors are not base64`);
      }
      const end = index.loadNamespace(ns.name, ns.dimension, ns.ids, ns.metadata, bytes, 0);
      if (end !== bytes.length) throw snapshotError(`namespace ${JSON.stringify(ns.name)}: ${bytes.length - end} extra vector bytes`);
    }
    return index;
  }

  toBinary(): Uint8Array {
    const entries = [...this.stores.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const header = new TextEncoder().encode(
      JSON.stringify({
        namespaces: entries.map(([name, s]) => ({ name, dimension: s.dim, ids: s.ids, metadata: s.meta.map((m) => m ?? null) })),
      }),
    );
    const headerEnd = 12 + header.length;
    const dataStart = (headerEnd + 3) & ~3;
    const total = dataStart + entries.reduce((n, [, s]) => n + s.size * s.dim * 4, 0);
    const out = new Uint8Array(total);
    out.set(MAGIC, 0);
    const view = new DataView(out.buffer);
    view.setUint32(4, 1, true);
    view.setUint32(8, header.length, true);
    out.set(header, 12);
    let off = dataStart;
    for (const [, s] of entries) {
      out.set(floatsToBytes(s.data.subarray(0, s.size * s.dim)), off);
      off += s.size * s.dim * 4;
    }
    return out;
  }

  static fromBinary(bytes: Uint8Array, options: MemoryIndexOptions = {}): MemoryIndex {
    if (!(bytes instanceof Uint8Array) || bytes.length < 12 || MAGIC.some((b, i) => bytes[i] !== b)) throw snapshotError('bad magic');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(4, true) !== 1) throw snapshotError(`unsupported version ${view.getUint32(4, true)}`);
    const headerLen = view.getUint32(8, true);
    if (12 + headerLen > bytes.length) throw snapshotError('truncated header');
    let header: { namespaces?: unknown };
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLen))) as { namespaces?: unknown };
    } catch {
      throw snapshotError('header is not JSON');
    }
    if (!Array.isArray(header.namespaces)) throw snapshotError('header has no namespaces');
    const index = new MemoryIndex(options);
    let off = (12 + headerLen + 3) & ~3;
    for (const ns of header.namespaces as { name: unknown; dimension: unknown; ids: unknown; metadata: unknown }[]) {
      off = index.loadNamespace(ns.name, ns.dimension, ns.ids, ns.metadata, bytes, off);
    }
    if (off !== bytes.length) throw snapshotError(`${bytes.length - off} trailing bytes`);
    return index;
  }

  /** validates one namespace of a snapshot, loads it, returns the offset after its vectors */
  private loadNamespace(name: unknown, dimension: unknown, ids: unknown, metadata: unknown, bytes: Uint8Array, offset: number): number {
    const ns = validateNamespace(name);
    if (this.stores.has(ns)) throw snapshotError(`namespace ${ns} appears twice`);
    if (typeof dimension !== 'number' || !Number.isInteger(dimension) || dimension < 1 || dimension > 20_000) {
      throw snapshotError(`namespace ${ns}: bad dimension`);
    }
    if (!Array.isArray(ids) || !Array.isArray(metadata) || metadata.length !== ids.length) {
      throw snapshotError(`namespace ${ns}: ids and metadata must be arrays of equal length`);
    }
    const n = ids.length;
    if (offset + n * dimension * 4 > bytes.length) throw snapshotError(`namespace ${ns}: truncated vectors`);
    const floats = bytesToFloats(bytes, offset, n * dimension);
    const store = new Store(dimension, Math.max(64, n));
    for (let i = 0; i < n; i++) {
      const id = validateId(ids[i], `snapshot.${ns}.ids[${i}]`);
      if (store.rowOf.has(id)) throw snapshotError(`namespace ${ns}: duplicate id ${JSON.stringify(id)}`);
      const values = normalizeVector(floats.subarray(i * dimension, (i + 1) * dimension), `snapshot.${ns}.vectors[${i}]`, dimension);
      store.put(id, values, validateMetadata(metadata[i], `snapshot.${ns}.metadata[${i}]`));
    }
    this.stores.set(ns, store);
    return offset + n * dimension * 4;
  }
}
