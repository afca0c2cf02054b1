/**
 * Pinecone adapter over the official SDK (@pinecone-database/pinecone 8.x, object-style calls).
 *
 * - Target: one index by `host` (its data-plane URL). `https://...svc.pinecone.io` for the service; a host
 *   written `http://127.0.0.1:PORT` is used as is, with no control-plane call (tests use a local emulator).
 *   Models of several dimensions need one index each: `indexes` (dimension -> index name) makes createPineconeIndex build
 *   a PineconeRoutedIndex (pinecone-routed.ts) over one PineconeIndex per dimension.
 *   The index must use metric `cosine` (or `dotproduct`: vectors are L2-normalised before upsert and query,
 *   so both give the cosine); `euclidean` would return distances, not similarities.
 * - Upserts are split into requests of at most 1,000 records and 2,000,000 bytes of JSON body (Pinecone's
 *   limits; the size is computed from the exact serialization). Values are sent with 9 significant digits,
 *   which round-trips float32 exactly and halves the payload. Requests are sent one after another.
 * - Retries: every data-plane request is retried on 429, 5xx (except 501), timeouts and network errors, with
 *   exponential backoff and jitter (delay_n = min(maxDelay, base * 2^(n-1)) * (0.5 + random/2), or the
 *   server's Retry-After when larger), up to `maxAttempts` attempts in total; the SDK's own retry is turned
 *   off so the two never multiply. All operations are idempotent (upsert by id, delete, reads).
 * - Deletes go out in chunks of 1,000 ids, fetches in chunks of 100 (URL length).
 * - `stats().dimension` is the index's dimension (Pinecone fixes it per index, for every namespace); stats are
 *   eventually consistent on serverless indexes (freshness lag of seconds), the dimension is not. The API reads
 *   it before serving or activating a model (src/api/service.ts checkIndexDimension), so a model of another
 *   dimension (a 512-d CLIP on a 64-d index) is refused up front instead of failing at its first upsert.
 * - Filters are validated locally (filter.ts) and sent as canonical Pinecone JSON rebuilt from the AST.
 * - Count freshness: because serverless stats lag the writes, a blue/green activation does not trust one
 *   describe_index_stats right after its upserts. The index carries a `consistency` policy (total timeout, first
 *   and largest backoff delay; config index.pinecone.consistency*) and `namespaceCounts` (every namespace's count
 *   from one describe_index_stats); src/api/activation.ts polls it with exponential backoff until the counts equal
 *   the stored items or the timeout passes. LanceDB and memory have no such policy: their counts are read once.
 */
import { Pinecone, type FetchResponse, type Index, type RecordMetadata } from '@pinecone-database/pinecone';
import { IndexError } from './errors.js';
import { parseFilter, toPineconeFilter } from './filter.js';
import type { FetchedRecord, Metadata, NamespaceStats, QueryMatch, QueryOptions, VectorIndex, VectorRecord } from './types.js';
import { NAMESPACE_PATTERN, normalizeVector, prepareRecords, utf8Length, validateIds, validateNamespace, validateTopK, type PreparedRecord } from './validate.js';

export const PINECONE_MAX_BATCH_RECORDS = 1_000;
export const PINECONE_MAX_REQUEST_BYTES = 2_000_000;

export interface RetryInfo {
  attempt: number;
  status?: number;
  error?: string;
  delayMs: number;
  url: string;
}

export interface PineconeIndexOptions {
  apiKey: string;
  /** the index host: `https://<index>-<project>.svc.<env>.pinecone.io`, or `http://127.0.0.1:PORT` (required unless `indexes` is given) */
  host?: string;
  /** attempts per request including the first; default 5 */
  maxAttempts?: number;
  /** default 250 ms */
  baseDelayMs?: number;
  /** default 10,000 ms */
  maxDelayMs?: number;
  /** per-attempt timeout; default 30,000 ms */
  timeoutMs?: number;
  /** records per upsert request, at most 1,000 */
  maxBatchRecords?: number;
  /** JSON bytes per upsert request, at most 2,000,000 */
  maxBatchBytes?: number;
  /** base fetch implementation (default: global fetch) */
  fetch?: typeof fetch;
  /** injectable for tests */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  onRetry?: (info: RetryInfo) => void;
  sourceTag?: string;
  /** how long a count verification may wait for describe_index_stats to catch up with writes; default 60,000 ms (0 = read once) */
  consistencyTimeoutMs?: number;
  /** first backoff delay between count polls; default 500 ms */
  consistencyInitialDelayMs?: number;
  /** largest backoff delay between count polls (the delay doubles up to it); default 8,000 ms */
  consistencyMaxDelayMs?: number;
  /**
   * one Pinecone index per embedding dimension: dimension -> index name, resolved by describe_index (see
   * pinecone-routed.ts); `host` is then the default index for a dimension with no entry, and may be left out
   */
  indexes?: Record<string, string>;
  /** control plane for describe_index; default https://api.pinecone.io (tests: a local stand-in) */
  controllerHost?: string;
}

/**
 * How long to wait for eventually consistent counts. Pinecone serverless reports new writes in
 * describe_index_stats after a freshness lag of (usually) seconds, so a verification polls with
 * delays initialDelayMs, 2x, 4x, ... capped at maxDelayMs, and gives up once timeoutMs have passed.
 */
export interface ConsistencyPolicy {
  timeoutMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_CONSISTENCY: Readonly<ConsistencyPolicy> = { timeoutMs: 60_000, initialDelayMs: 500, maxDelayMs: 8_000 };

/** An index whose counts may trail its writes (Pinecone): callers that verify counts poll it with backoff. */
export interface EventuallyConsistentCounts {
  readonly consistency: ConsistencyPolicy;
  /** the record count of each named namespace (0 when absent), as the index reports it now */
  namespaceCounts(namespaces: readonly string[]): Promise<Record<string, number>>;
}

export function consistencyPolicy(options: PineconeIndexOptions): ConsistencyPolicy {
  const pick = (value: number | undefined, fallback: number, field: string, min: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isFinite(value) || value < min) {
      throw new IndexError('INVALID_ARGUMENT', `pinecone.${field} must be a finite number >= ${min} (milliseconds), got ${value}`, { field: `pinecone.${field}` });
    }
    return value;
  };
  const timeoutMs = pick(options.consistencyTimeoutMs, DEFAULT_CONSISTENCY.timeoutMs, 'consistencyTimeoutMs', 0);
  const initialDelayMs = pick(options.consistencyInitialDelayMs, DEFAULT_CONSISTENCY.initialDelayMs, 'consistencyInitialDelayMs', 1);
  const maxDelayMs = pick(options.consistencyMaxDelayMs, Math.max(DEFAULT_CONSISTENCY.maxDelayMs, initialDelayMs), 'consistencyMaxDelayMs', 1);
  if (maxDelayMs < initialDelayMs) {
    throw new IndexError('INVALID_ARGUMENT', `pinecone.consistencyMaxDelayMs (${maxDelayMs}) must be >= pinecone.consistencyInitialDelayMs (${initialDelayMs})`, {
      field: 'pinecone.consistencyMaxDelayMs',
    });
  }
  return { timeoutMs, initialDelayMs, maxDelayMs };
}

const RETRY_EXHAUSTED = 'ManyfoldRetryExhausted';

class RetryExhaustedError extends Error {
  constructor(
    message: string,
    readonly httpStatus: number | undefined,
    readonly attempts: number,
    readonly body?: string,
  ) {
    super(message);
    this.name = RETRY_EXHAUSTED;
  }
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501);
}

function retryAfterMs(res: Response): number | undefined {
  const h = res.headers.get('retry-after');
  if (!h) return undefined;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const date = Date.parse(h);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

/** the retrying fetch an adapter's SDK client uses, from the adapter's options (defaults: 5 attempts, 250 ms .. 10 s, 30 s per attempt) */
export function retryingFetchFor(options: PineconeIndexOptions): typeof fetch {
  return createRetryingFetch({
    fetch: options.fetch,
    maxAttempts: Math.max(1, Math.floor(options.maxAttempts ?? 5)),
    baseDelayMs: options.baseDelayMs ?? 250,
    maxDelayMs: options.maxDelayMs ?? 10_000,
    timeoutMs: options.timeoutMs ?? 30_000,
    sleep: options.sleep,
    random: options.random,
    onRetry: options.onRetry,
  });
}

/** fetch with retries on 429/5xx/timeouts/network errors, exponential backoff with jitter, attempt limit */
export function createRetryingFetch(options: {
  fetch?: typeof fetch;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  timeoutMs: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  onRetry?: (info: RetryInfo) => void;
}): typeof fetch {
  const base = options.fetch ?? globalThis.fetch.bind(globalThis);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    for (let attempt = 1; ; attempt++) {
      let res: Response | undefined;
      let error: unknown;
      try {
        const signal = init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(options.timeoutMs)]) : AbortSignal.timeout(options.timeoutMs);
        res = await base(input, { ...init, signal });
      } catch (e) {
        if (init?.signal?.aborted) throw e; // the caller cancelled: do not retry
        error = e;
      }
      if (res && !isRetryableStatus(res.status)) return res;
      const status = res?.status;
      let body: string | undefined;
      if (res) body = (await res.text().catch(() => '')).slice(0, 500);
      const errText = error instanceof Error ? `${error.name}: ${error.message}` : error === undefined ? undefined : String(error);
      if (attempt >= options.maxAttempts) {
        const what = status !== undefined ? `HTTP ${status}${body ? ` ${body}` : ''}` : (errText ?? 'unknown error');
        throw new RetryExhaustedError(`gave up after ${attempt} attempt(s): ${what}`, status, attempt, body);
      }
      const backoff = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + random() / 2);
      const hinted = res ? retryAfterMs(res) : undefined;
      const delayMs = Math.min(options.maxDelayMs, Math.max(backoff, hinted ?? 0));
      options.onRetry?.({ attempt, delayMs, url, ...(status !== undefined ? { status } : {}), ...(errText ? { error: errText } : {}) });
      await sleep(delayMs);
    }
  };
}

function findInChain(e: unknown, pred: (x: Error) => boolean): Error | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 8 && cur instanceof Error; i++) {
    if (pred(cur)) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function isNotFound(e: unknown): boolean {
  return findInChain(e, (x) => x.name === 'PineconeNotFoundError') !== undefined;
}

/** compact float32 text: 9 significant digits identify a float32 exactly */
function wireValues(v: Float32Array): number[] {
  const out = new Array<number>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Number(v[i].toPrecision(9));
  return out;
}

interface WireRecord {
  id: string;
  values: number[];
  metadata?: RecordMetadata;
}

/** splits records into upsert requests within the record and byte limits */
export function planUpsertBatches(
  records: readonly WireRecord[],
  namespace: string,
  maxRecords: number,
  maxBytes: number,
): { records: WireRecord[]; bytes: number }[] {
  // body: {"vectors":[r1,r2,...],"namespace":"<ns>"}
  const envelope = utf8Length(JSON.stringify({ vectors: [], namespace }));
  const batches: { records: WireRecord[]; bytes: number }[] = [];
  let cur: WireRecord[] = [];
  let bytes = envelope;
  for (const r of records) {
    const size = utf8Length(JSON.stringify(r));
    const extra = size + (cur.length > 0 ? 1 : 0);
    if (envelope + size > maxBytes) {
      throw new IndexError('INVALID_ARGUMENT', `record ${JSON.stringify(r.id)} alone is ${size} bytes serialized; a Pinecone request holds at most ${maxBytes}`, {
        field: 'records',
      });
    }
    if (cur.length > 0 && (cur.length >= maxRecords || bytes + extra > maxBytes)) {
      batches.push({ records: cur, bytes });
      cur = [];
      bytes = envelope;
    }
    bytes += size + (cur.length > 0 ? 1 : 0);
    cur.push(r);
  }
  if (cur.length > 0) batches.push({ records: cur, bytes });
  return batches;
}

export class PineconeIndex implements VectorIndex, EventuallyConsistentCounts {
  readonly kind = 'pinecone';
  readonly consistency: ConsistencyPolicy;
  private readonly index: Index;
  private readonly maxBatchRecords: number;
  private readonly maxBatchBytes: number;

  constructor(options: PineconeIndexOptions) {
    if (!options?.apiKey) throw new IndexError('INVALID_ARGUMENT', 'pinecone.apiKey is required', { field: 'pinecone.apiKey' });
    if (!options.host || !/^https?:\/\/[^\s/]+(\/.*)?$|^[^\s/:]+\.[^\s/]+$/.test(options.host)) {
      throw new IndexError('INVALID_ARGUMENT', `pinecone.host must be the index host URL, got ${JSON.stringify(options.host)}`, {
        field: 'pinecone.host',
      });
    }
    this.consistency = consistencyPolicy(options);
    this.maxBatchRecords = Math.min(PINECONE_MAX_BATCH_RECORDS, Math.max(1, options.maxBatchRecords ?? PINECONE_MAX_BATCH_RECORDS));
    this.maxBatchBytes = Math.min(PINECONE_MAX_REQUEST_BYTES, Math.max(1024, options.maxBatchBytes ?? PINECONE_MAX_REQUEST_BYTES));
    const pc = new Pinecone({
      apiKey: options.apiKey,
      fetchApi: retryingFetchFor(options),
      maxRetries: 0,
      ...(options.sourceTag ? { sourceTag: options.sourceTag } : {}),
    });
    this.index = pc.index({ host: options.host });
  }

  private async call<T>(op: string, fn: () => Promise<T>, onNotFound?: () => T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (onNotFound && isNotFound(e)) return onNotFound();
      throw this.mapError(op, e);
    }
  }

  private mapError(op: string, e: unknown): IndexError {
    if (e instanceof IndexError) return e;
    const exhausted = findInChain(e, (x) => x.name === RETRY_EXHAUSTED) as RetryExhaustedError | undefined;
    if (exhausted) return new IndexError('BACKEND', `Pinecone ${op} failed: ${exhausted.message}`, { cause: e });
    const err = e instanceof Error ? e : new Error(String(e));
    if (err.name === 'PineconeBadRequestError' || err.name === 'PineconeArgumentError') {
      const code = /dimension/i.test(err.message) ? 'DIMENSION_MISMATCH' : 'INVALID_ARGUMENT';
      return new IndexError(code, `Pinecone ${op} rejected: ${err.message}`, { cause: e });
    }
    return new IndexError('BACKEND', `Pinecone ${op} failed: ${err.name}: ${err.message}`, { cause: e });
  }

  async upsert(namespace: string, records: readonly VectorRecord[]): Promise<void> {
    validateNamespace(namespace);
    const { records: prepared } = prepareRecords(records);
    const wire = prepared.map((r: PreparedRecord): WireRecord => {
      const w: WireRecord = { id: r.id, values: wireValues(r.values) };
      if (r.metadata) w.metadata = r.metadata;
      return w;
    });
    for (const batch of planUpsertBatches(wire, namespace, this.maxBatchRecords, this.maxBatchBytes)) {
      await this.call('upsert', () => this.index.upsert({ records: batch.records, namespace }));
    }
  }

  async query(namespace: string, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    validateNamespace(namespace);
    const topK = validateTopK(options?.topK);
    const ast = parseFilter(options.filter);
    const q = normalizeVector(vector, 'vector');
    const includeMetadata = options.includeMetadata === true;
    const res = await this.call(
      'query',
      () =>
        this.index.query({
          namespace,
          vector: wireValues(q),
          topK,
          includeMetadata,
          includeValues: false,
          ...(ast ? { filter: toPineconeFilter(ast) } : {}),
        }),
      () => ({ matches: [], namespace }),
    );
    return (res.matches ?? []).map((m) => {
      const out: QueryMatch = { id: m.id, score: m.score ?? 0 };
      if (includeMetadata && m.metadata && Object.keys(m.metadata).length > 0) out.metadata = m.metadata as Metadata;
      return out;
    });
  }

  async fetch(namespace: string, ids: readonly string[]): Promise<FetchedRecord[]> {
    validateNamespace(namespace);
    const wanted = [...new Set(validateIds(ids))];
    const found = new Map<string, FetchedRecord>();
    for (let i = 0; i < wanted.length; i += 100) {
      const chunk = wanted.slice(i, i + 100);
      const res = await this.call('fetch', () => this.index.fetch({ ids: chunk, namespace }), (): FetchResponse => ({ records: {}, namespace }));
      for (const [id, rec] of Object.entries(res.records ?? {})) {
        const out: FetchedRecord = { id, values: Float32Array.from(rec.values ?? []) };
        if (rec.metadata && Object.keys(rec.metadata).length > 0) out.metadata = rec.metadata as Metadata;
        found.set(id, out);
      }
    }
    return wanted.flatMap((id) => found.get(id) ?? []);
  }

  async delete(namespace: string, ids: readonly string[]): Promise<void> {
    validateNamespace(namespace);
    const valid = [...new Set(validateIds(ids))];
    for (let i = 0; i < valid.length; i += 1000) {
      const chunk = valid.slice(i, i + 1000);
      await this.call('delete', () => this.index.deleteMany({ ids: chunk, namespace }), () => undefined);
    }
  }

  async stats(namespace: string): Promise<NamespaceStats> {
    validateNamespace(namespace);
    const s = await this.call('describe_index_stats', () => this.index.describeIndexStats());
    const count = s.namespaces?.[namespace]?.recordCount ?? 0;
    return s.dimension !== undefined && s.dimension > 0 ? { count, dimension: s.dimension } : { count };
  }

  /** the index's dimension from describe_index_stats (undefined when it reports none) */
  async dimension(): Promise<number | undefined> {
    const s = await this.call('describe_index_stats', () => this.index.describeIndexStats());
    return s.dimension !== undefined && s.dimension > 0 ? s.dimension : undefined;
  }

  /** one describe_index_stats for all of them, so each poll of a verification is a single request */
  async namespaceCounts(namespaces: readonly string[]): Promise<Record<string, number>> {
    for (const ns of namespaces) validateNamespace(ns);
    const s = await this.call('describe_index_stats', () => this.index.describeIndexStats());
    const out: Record<string, number> = {};
    for (const ns of namespaces) out[ns] = s.namespaces?.[ns]?.recordCount ?? 0;
    return out;
  }

  async listNamespaces(): Promise<string[]> {
    const s = await this.call('describe_index_stats', () => this.index.describeIndexStats());
    return Object.entries(s.namespaces ?? {})
      .filter(([name, ns]) => NAMESPACE_PATTERN.test(name) && (ns.recordCount ?? 0) > 0)
      .map(([name]) => name)
      .sort();
  }

  async dropNamespace(namespace: string): Promise<void> {
    validateNamespace(namespace);
    await this.call('delete_all', () => this.index.deleteAll({ namespace }), () => undefined);
  }

  async close(): Promise<void> {
    // stateless HTTP client: nothing to release
  }
}
