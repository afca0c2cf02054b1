/**
 * Pinecone with one index per embedding dimension. A Pinecone index has a single dimension fixed at creation, so
 * models of different sizes (a 128-d Manyfold tiny model, a 512-d CLIP) cannot share one. Configuration maps a
 * dimension to an index name (`index.pinecone.indexes: {"512": "manyfold-512", "128": "manyfold-128"}`); the
 * single `host` index, when given, is the default for a dimension with no entry.
 *
 * - Resolution: a name is resolved with describe_index (the control plane: `controllerHost`, default
 *   https://api.pinecone.io) to its host, dimension and metric, once per process. An index whose dimension is not
 *   the one it is mapped to, whose metric is euclidean, or that does not exist, is refused with IndexError
 *   DIMENSION_MISMATCH / INVALID_ARGUMENT naming the config key; so is a dimension with no index at all (and the
 *   default index when its describe_index_stats dimension differs). `checkDimension(dim)` runs this before any
 *   write (src/api/service.ts checkIndexDimension), and every upsert and query resolves its index the same way, so
 *   nothing is written to an index of the wrong size.
 * - Routing: upserts and queries go to the index of their vectors' dimension, and the router remembers which
 *   index holds each namespace (the API's namespaces are per model, `<ns>--<tag>--img|txt`, so one namespace lives
 *   in one index). Calls that carry no vector (fetch, delete, stats, drop, list, counts) on a namespace this
 *   process has not routed yet go to every configured index: a namespace absent from an index is a no-op there.
 */
import { Pinecone } from '@pinecone-database/pinecone';
import { IndexError } from './errors.js';
import { consistencyPolicy, PineconeIndex, retryingFetchFor, type ConsistencyPolicy, type EventuallyConsistentCounts, type PineconeIndexOptions } from './pinecone.js';
import type { FetchedRecord, NamespaceStats, QueryMatch, QueryOptions, VectorIndex, VectorRecord } from './types.js';
import { DIMENSION_KEY, PINECONE_INDEX_NAME } from './pinecone-names.js';
import { validateNamespace } from './validate.js';

/** the config key a dimension is looked up under (JSON object keys are strings) */
const key = (dim: number) => String(dim);
/** one host, however written: describe_index answers `name-xyz.svc...pinecone.io`, configs often add https:// */
const hostKey = (host: string) => host.replace(/^https?:\/\//i, '').replace(/\/+$/, '').toLowerCase();

export class PineconeRoutedIndex implements VectorIndex, EventuallyConsistentCounts {
  readonly kind = 'pinecone';
  readonly consistency: ConsistencyPolicy;
  private readonly fallback?: PineconeIndex;
  private readonly names: ReadonlyMap<string, string>;
  /** dimension -> the resolved index (a promise, so concurrent first calls share one describe_index) */
  private readonly byDimension = new Map<string, Promise<PineconeIndex>>();
  private readonly byNamespace = new Map<string, PineconeIndex>();
  /** one client per host, so the default `host` mapped again under a name is one index (counts are not summed twice) */
  private readonly byHost = new Map<string, PineconeIndex>();
  private readonly control: Pinecone;

  constructor(private readonly options: PineconeIndexOptions) {
    const indexes = options.indexes ?? {};
    for (const [dim, name] of Object.entries(indexes)) {
      if (!DIMENSION_KEY.test(dim)) {
        throw new IndexError('INVALID_ARGUMENT', `pinecone.indexes keys are embedding dimensions (positive integers), got ${JSON.stringify(dim)}`, { field: `pinecone.indexes.${dim}` });
      }
      if (!PINECONE_INDEX_NAME.test(name)) {
        throw new IndexError('INVALID_ARGUMENT', `pinecone.indexes.${dim} must be a Pinecone index name (lower-case letters, digits, '-'; 1-45 characters), got ${JSON.stringify(name)}`, {
          field: `pinecone.indexes.${dim}`,
        });
      }
    }
    this.names = new Map(Object.entries(indexes));
    if (this.names.size === 0 && !options.host) throw new IndexError('INVALID_ARGUMENT', 'pinecone needs a host or at least one entry in pinecone.indexes', { field: 'pinecone.indexes' });
    if (!options.apiKey) throw new IndexError('INVALID_ARGUMENT', 'pinecone.apiKey is required', { field: 'pinecone.apiKey' });
    if (options.host) {
      this.fallback = new PineconeIndex(options);
      this.byHost.set(hostKey(options.host), this.fallback);
    }
    this.consistency = consistencyPolicy(options);
    this.control = new Pinecone({
      apiKey: options.apiKey,
      maxRetries: 0,
      fetchApi: retryingFetchFor(options),
      ...(options.controllerHost ? { controllerHostUrl: options.controllerHost } : {}),
      ...(options.sourceTag ? { sourceTag: options.sourceTag } : {}),
    });
  }

  /** The index that holds `dim`-dimensional vectors; refuses (before any write) when there is none of that size. */
  async checkDimension(dim: number): Promise<void> {
    await this.indexFor(dim);
  }

  private indexFor(dim: number): Promise<PineconeIndex> {
    let p = this.byDimension.get(key(dim));
    if (!p) {
      p = this.resolve(dim);
      p.catch(() => this.byDimension.delete(key(dim))); // a transient control-plane failure is retried next time
      this.byDimension.set(key(dim), p);
    }
    return p;
  }

  private async resolve(dim: number): Promise<PineconeIndex> {
    const name = this.names.get(key(dim));
    if (name === undefined) {
      const configured = [...this.names.entries()].map(([d, n]) => `${d}: ${n}`).join(', ');
      if (!this.fallback) {
        throw new IndexError(
          'DIMENSION_MISMATCH',
          `no Pinecone index for ${dim}-dimensional embeddings (index.pinecone.indexes maps ${configured}): ` +
            `create a Pinecone index of dimension ${dim} (metric cosine) and add it as index.pinecone.indexes["${dim}"]`,
          { field: `pinecone.indexes.${dim}` },
        );
      }
      const dimension = await this.fallback.dimension();
      if (dimension !== undefined && dimension !== dim) {
        throw new IndexError(
          'DIMENSION_MISMATCH',
          `no Pinecone index for ${dim}-dimensional embeddings: index.pinecone.indexes has no entry "${dim}" (it maps ${configured || 'nothing'}) and the default index ` +
            `(index.pinecone.host) holds ${dimension}-dimensional vectors: create a Pinecone index of dimension ${dim} (metric cosine) and add it as index.pinecone.indexes["${dim}"]`,
          { field: `pinecone.indexes.${dim}` },
        );
      }
      return this.fallback;
    }
    let described: { dimension?: number; metric?: string; host?: string };
    try {
      described = await this.control.describeIndex(name);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (err.name === 'PineconeNotFoundError') {
        throw new IndexError('INVALID_ARGUMENT', `Pinecone index "${name}" (index.pinecone.indexes["${dim}"]) does not exist: create it with dimension ${dim} and metric cosine`, {
          field: `pinecone.indexes.${dim}`,
          cause: e,
        });
      }
      throw new IndexError('BACKEND', `Pinecone describe_index("${name}") failed: ${err.name}: ${err.message}`, { cause: e });
    }
    if (described.dimension !== dim) {
      throw new IndexError(
        'DIMENSION_MISMATCH',
        `Pinecone index "${name}" (index.pinecone.indexes["${dim}"]) holds ${described.dimension ?? 'unknown'}-dimensional vectors, not ${dim}: ` +
          `map "${dim}" to an index created with dimension ${dim}`,
        { field: `pinecone.indexes.${dim}` },
      );
    }
    if (described.metric !== 'cosine' && described.metric !== 'dotproduct') {
      throw new IndexError('INVALID_ARGUMENT', `Pinecone index "${name}" uses metric ${described.metric}; Manyfold needs cosine (or dotproduct)`, { field: `pinecone.indexes.${dim}` });
    }
    if (!described.host) throw new IndexError('BACKEND', `Pinecone describe_index("${name}") returned no host (is the index still initialising?)`);
    let index = this.byHost.get(hostKey(described.host));
    if (!index) this.byHost.set(hostKey(described.host), (index = new PineconeIndex({ ...this.options, host: described.host })));
    return index;
  }

  /** every configured index (resolved), for calls that name a namespace but carry no vector */
  private async all(): Promise<PineconeIndex[]> {
    const out = new Set<PineconeIndex>();
    if (this.fallback) out.add(this.fallback);
    for (const d of this.names.keys()) out.add(await this.indexFor(Number(d)));
    return [...out];
  }

  private async holding(namespace: string): Promise<PineconeIndex[]> {
    validateNamespace(namespace);
    const known = this.byNamespace.get(namespace);
    return known ? [known] : this.all();
  }

  async upsert(namespace: string, records: readonly VectorRecord[]): Promise<void> {
    if (records.length === 0) return;
    const dim = records[0]?.values?.length;
    if (!dim) throw new IndexError('INVALID_ARGUMENT', 'records[0].values must be a non-empty vector', { field: 'records[0].values' });
    const index = await this.indexFor(dim);
    await index.upsert(namespace, records);
    this.byNamespace.set(namespace, index);
  }

  async query(namespace: string, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    return (await this.indexFor(vector.length)).query(namespace, vector, options);
  }

  async fetch(namespace: string, ids: readonly string[]): Promise<FetchedRecord[]> {
    for (const index of await this.holding(namespace)) {
      const found = await index.fetch(namespace, ids);
      if (found.length > 0) return found;
    }
    return [];
  }

  async delete(namespace: string, ids: readonly string[]): Promise<void> {
    for (const index of await this.holding(namespace)) await index.delete(namespace, ids);
  }

  /** the namespace's count in the index that holds it; `dimension` only once that index is known */
  async stats(namespace: string): Promise<NamespaceStats> {
    const candidates = await this.holding(namespace);
    for (const index of candidates) {
      const s = await index.stats(namespace);
      if (s.count > 0 || candidates.length === 1) return s;
    }
    return { count: 0 };
  }

  async namespaceCounts(namespaces: readonly string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = Object.fromEntries(namespaces.map((n) => [n, 0]));
    // a namespace lives in one index: summing over the indexes is its count
    for (const index of await this.all()) {
      const counts = await index.namespaceCounts(namespaces);
      for (const n of namespaces) out[n] += counts[n] ?? 0;
    }
    return out;
  }

  async listNamespaces(): Promise<string[]> {
    const names = new Set<string>();
    for (const index of await this.all()) for (const n of await index.listNamespaces()) names.add(n);
    return [...names].sort();
  }

  async dropNamespace(namespace: string): Promise<void> {
    for (const index of await this.all()) await index.dropNamespace(namespace);
    this.byNamespace.delete(namespace);
  }

  async close(): Promise<void> {
    // stateless HTTP clients: nothing to release
  }
}
