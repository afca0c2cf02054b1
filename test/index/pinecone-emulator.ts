/**
 * A local emulator of Pinecone's data plane (the routes the SDK calls), for tests: no live Pinecone is
 * reachable here. It speaks the same JSON as the service (API version 2025-10):
 *   POST /vectors/upsert        {vectors: [{id, values, metadata?}], namespace}     -> {upsertedCount}
 *   POST /query                 {namespace, vector, topK, filter?, includeMetadata?, includeValues?}
 *                                                                                  -> {matches: [{id, score, values, metadata?}], namespace, usage}
 *   POST /vectors/delete        {ids | deleteAll: true | filter, namespace}         -> {}
 *   POST /describe_index_stats  {filter?}                                           -> {namespaces: {ns: {vectorCount}}, dimension, indexFullness, totalVectorCount, metric}
 *   GET  /vectors/fetch?ids=a&ids=b&namespace=ns                                    -> {vectors: {id: {id, values, metadata?}}, namespace, usage}
 * It enforces the service limits a client must respect (api-key header, 1,000 vectors and 2 MB per upsert,
 * one dimension per index, topK <= 10,000, the filter operator set) and answers like Pinecone does
 * (400 with {code, message}); it can inject failures (e.g. 429 / 503, optional Retry-After) and records
 * every request's size so tests can prove batching. Metric: cosine.
 *
 * Lag mode (`statsLag`, or `setStatsLag` at any time): like serverless Pinecone, describe_index_stats reports
 * counts that trail the writes. A write (upsert / delete) becomes visible to stats only once `calls` further
 * describe_index_stats requests have been answered after it, or `ms` milliseconds have passed since it
 * (either condition; `calls: Infinity` never converges). Queries and fetches stay immediate. `staleStats`
 * counts the stats answers whose counts differed from the true ones, so a test can prove the lag was seen.
 *
 * Its filter evaluator is written independently of src/index/filter.ts, on purpose.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Meta = Record<string, unknown>;
interface Vec {
  values: number[];
  metadata?: Meta;
}

export interface RecordedRequest {
  method: string;
  path: string;
  bytes: number;
  /** vectors in an upsert, ids in a delete */
  records?: number;
  status: number;
  apiVersion?: string;
  /** the parsed JSON body, kept for requests under 64 KB */
  body?: unknown;
}

export interface InjectedFailure {
  status: number;
  /** only requests whose path starts with this */
  path?: string;
  retryAfterSeconds?: number;
}

export interface EmulatorOptions {
  apiKey?: string;
  /** fixed index dimension; default: set by the first upsert */
  dimension?: number;
  maxUpsertBytes?: number;
  maxUpsertVectors?: number;
  /** describe_index_stats trails the writes (see the lag mode above) */
  statsLag?: StatsLag;
  /** clock of the `ms` lag (default Date.now): tests step it instead of sleeping */
  now?: () => number;
}

export interface StatsLag {
  /** a write is visible after this many later describe_index_stats answers (Infinity: never) */
  calls?: number;
  /** ...or once this many milliseconds have passed since it */
  ms?: number;
}

/** the namespace counts after one write, waiting to become visible to stats */
interface PendingCounts {
  counts: Map<string, number>;
  at: number;
  /** statsCalls when it was written */
  call: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly grpcCode = 3,
  ) {
    super(message);
  }
}

const OPS = new Set(['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists']);

/** Pinecone filter semantics as documented, plus: $ne/$nin match records without the field. */
function matches(filter: unknown, md: Meta | undefined): boolean {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) throw new HttpError(400, 'filter must be an object');
  return Object.entries(filter as Record<string, unknown>).every(([key, cond]) => {
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(cond) || cond.length === 0) throw new HttpError(400, `${key} must be a non-empty array`);
      return key === '$and' ? cond.every((c) => matches(c, md)) : cond.some((c) => matches(c, md));
    }
    if (key.startsWith('$')) throw new HttpError(400, `unsupported operator ${key}`);
    const has = md !== undefined && Object.prototype.hasOwnProperty.call(md, key);
    const value = has ? md[key] : undefined;
    const ops: Record<string, unknown> =
      cond !== null && typeof cond === 'object' && !Array.isArray(cond) ? (cond as Record<string, unknown>) : { $eq: cond };
    return Object.entries(ops).every(([op, arg]) => {
      if (!OPS.has(op)) throw new HttpError(400, `unsupported operator ${op}`);
      const eq = (x: unknown) => (Array.isArray(value) ? value.includes(x) : has && value === x);
      const inn = (xs: unknown) => {
        if (!Array.isArray(xs)) throw new HttpError(400, `${op} needs an array`);
        return Array.isArray(value) ? value.some((v) => xs.includes(v)) : has && xs.includes(value);
      };
      const num = () => {
        if (typeof arg !== 'number') throw new HttpError(400, `${op} needs a number`);
        return typeof value === 'number';
      };
      switch (op) {
        case '$eq':
          return eq(arg);
        case '$ne':
          return !eq(arg);
        case '$in':
          return inn(arg);
        case '$nin':
          return !inn(arg);
        case '$gt':
          return num() && (value as number) > (arg as number);
        case '$gte':
          return num() && (value as number) >= (arg as number);
        case '$lt':
          return num() && (value as number) < (arg as number);
        case '$lte':
          return num() && (value as number) <= (arg as number);
        default:
          if (typeof arg !== 'boolean') throw new HttpError(400, '$exists needs a boolean');
          return has === arg;
      }
    });
  });
}

function cosine(a: number[], b: number[]): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

export class PineconeEmulator {
  readonly requests: RecordedRequest[] = [];
  private readonly namespaces = new Map<string, Map<string, Vec>>();
  private readonly failures: InjectedFailure[] = [];
  private dimension: number | undefined;
  private server: Server | undefined;
  readonly apiKey: string;
  private readonly maxUpsertBytes: number;
  private readonly maxUpsertVectors: number;
  private lag: StatsLag | undefined;
  /** counts stats reports in lag mode, and the writes not yet reflected in them (oldest first) */
  private visibleCounts = new Map<string, number>();
  private readonly pending: PendingCounts[] = [];
  private statsCalls = 0;
  /** describe_index_stats answers whose counts differed from the true counts (lag mode) */
  staleStats = 0;
  private readonly now: () => number;

  constructor(options: EmulatorOptions = {}) {
    this.lag = options.statsLag;
    this.now = options.now ?? Date.now;
    this.apiKey = options.apiKey ?? 'test-key';
    this.dimension = options.dimension;
    this.maxUpsertBytes = options.maxUpsertBytes ?? 2_000_000;
    this.maxUpsertVectors = options.maxUpsertVectors ?? 1_000;
  }

  /** starts on 127.0.0.1 and returns the host URL to give the SDK */
  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** the next `count` matching requests fail with `status` */
  failNext(count: number, failure: InjectedFailure): void {
    for (let i = 0; i < count; i++) this.failures.push(failure);
  }

  /** turns the lag on (or off with undefined); the counts seen so far stay the baseline */
  setStatsLag(lag: StatsLag | undefined): void {
    this.visibleCounts = this.trueCounts();
    this.pending.length = 0;
    this.lag = lag;
  }

  private trueCounts(): Map<string, number> {
    return new Map([...this.namespaces].map(([name, store]) => [name, store.size]));
  }

  /** after every write: in lag mode, queue the new counts instead of showing them */
  private wrote(): void {
    if (this.lag) this.pending.push({ counts: this.trueCounts(), at: this.now(), call: this.statsCalls });
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  count(namespace: string): number {
    return this.namespaces.get(namespace)?.size ?? 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      bytes: raw.length,
      status: 200,
      ...(typeof req.headers['x-pinecone-api-version'] === 'string' ? { apiVersion: req.headers['x-pinecone-api-version'] } : {}),
    };
    this.requests.push(rec);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.headers['api-key'] !== this.apiKey) throw new HttpError(401, 'Invalid API Key', 16);
      const fi = this.failures.findIndex((f) => !f.path || url.pathname.startsWith(f.path));
      if (fi >= 0) {
        const f = this.failures.splice(fi, 1)[0];
        const headers: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {};
        send(f.status, { code: f.status === 429 ? 8 : 14, message: `injected failure ${f.status}` }, headers);
        return;
      }
      let body: Record<string, unknown> = {};
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
        } catch {
          throw new HttpError(400, 'request body is not JSON');
        }
        if (raw.length < 65_536) rec.body = body;
      }
      const route = `${req.method} ${url.pathname}`;
      switch (route) {
        case 'POST /vectors/upsert':
          return send(200, this.upsert(body, raw.length, rec));
        case 'POST /query':
          return send(200, this.query(body));
        case 'POST /vectors/delete':
          return send(200, this.delete(body, rec));
        case 'POST /describe_index_stats':
          return send(200, this.stats());
        case 'GET /vectors/fetch':
          return send(200, this.fetch(url));
        default:
          throw new HttpError(404, `no route ${route}`, 5);
      }
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, String(e), 13);
      send(err.status, { code: err.grpcCode, message: err.message, details: [] });
    }
  }

  private ns(name: unknown): string {
    if (name === undefined || name === '') return '__default__';
    if (typeof name !== 'string') throw new HttpError(400, 'namespace must be a string');
    return name;
  }

  private checkVector(values: unknown, what: string): number[] {
    if (!Array.isArray(values) || values.length === 0 || values.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
      throw new HttpError(400, `${what}: values must be a non-empty array of numbers`);
    }
    if (this.dimension !== undefined && values.length !== this.dimension) {
      throw new HttpError(400, `Vector dimension ${values.length} does not match the dimension of the index ${this.dimension}`);
    }
    return values as number[];
  }

  private upsert(body: Record<string, unknown>, bytes: number, rec: RecordedRequest): { upsertedCount: number } {
    const vectors = body.vectors;
    if (!Array.isArray(vectors) || vectors.length === 0) throw new HttpError(400, 'vectors must be a non-empty array');
    rec.records = vectors.length;
    if (bytes > this.maxUpsertBytes) throw new HttpError(400, `Request size ${bytes} exceeds the maximum supported size of 2MB`);
    if (vectors.length > this.maxUpsertVectors) throw new HttpError(400, `Upsert batch of ${vectors.length} exceeds the limit of ${this.maxUpsertVectors}`);
    const checked = vectors.map((v: { id?: unknown; values?: unknown; metadata?: unknown }) => {
      if (typeof v?.id !== 'string' || v.id.length === 0) throw new HttpError(400, 'every vector needs a string id');
      const values = this.checkVector(v.values, `vector ${v.id}`);
      this.dimension ??= values.length;
      if (v.metadata !== undefined && (v.metadata === null || typeof v.metadata !== 'object')) throw new HttpError(400, 'metadata must be an object');
      return { id: v.id, values, metadata: v.metadata as Meta | undefined };
    });
    const name = this.ns(body.namespace);
    let store = this.namespaces.get(name);
    if (!store) this.namespaces.set(name, (store = new Map()));
    for (const v of checked) store.set(v.id, v.metadata && Object.keys(v.metadata).length ? { values: v.values, metadata: v.metadata } : { values: v.values });
    this.wrote();
    return { upsertedCount: checked.length };
  }

  private query(body: Record<string, unknown>) {
    const topK = body.topK;
    if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1 || topK > 10_000) throw new HttpError(400, 'topK must be an integer in [1, 10000]');
    const vector = this.checkVector(body.vector, 'query');
    const name = this.ns(body.namespace);
    const store = this.namespaces.get(name) ?? new Map<string, Vec>();
    const scored: { id: string; score: number; v: Vec }[] = [];
    for (const [id, v] of store) {
      if (body.filter !== undefined && !matches(body.filter, v.metadata)) continue;
      scored.push({ id, score: cosine(vector, v.values), v });
    }
    scored.sort((a, b) => b.score - a.score);
    return {
      results: [],
      matches: scored.slice(0, topK).map((s) => ({
        id: s.id,
        score: s.score,
        values: body.includeValues ? s.v.values : [],
        ...(body.includeMetadata && s.v.metadata ? { metadata: s.v.metadata } : {}),
      })),
      namespace: name === '__default__' ? '' : name,
      usage: { readUnits: 1 },
    };
  }

  private delete(body: Record<string, unknown>, rec: RecordedRequest): Record<string, never> {
    const name = this.ns(body.namespace);
    const store = this.namespaces.get(name);
    if (!store) throw new HttpError(404, 'Namespace not found', 5);
    if (body.deleteAll === true) {
      this.namespaces.delete(name);
      this.wrote();
      return {};
    }
    if (Array.isArray(body.ids)) {
      if (body.ids.length > 1000) throw new HttpError(400, 'at most 1000 ids per delete');
      rec.records = body.ids.length;
      for (const id of body.ids) store.delete(String(id));
    } else if (body.filter !== undefined) {
      for (const [id, v] of store) if (matches(body.filter, v.metadata)) store.delete(id);
    } else {
      throw new HttpError(400, 'one of ids, deleteAll or filter is required');
    }
    if (store.size === 0) this.namespaces.delete(name);
    this.wrote();
    return {};
  }

  /** the counts stats reports: the true ones, or in lag mode the newest write that is due */
  private reportedCounts(): Map<string, number> {
    if (!this.lag) return this.trueCounts();
    this.statsCalls++;
    const { calls = Infinity, ms = Infinity } = this.lag;
    const now = this.now();
    // a write is due once `calls` answers came after it (this one excluded) or `ms` have passed
    while (this.pending.length > 0 && (this.statsCalls - 1 - this.pending[0].call >= calls || now - this.pending[0].at >= ms)) {
      this.visibleCounts = this.pending.shift()!.counts;
    }
    const real = this.trueCounts();
    const same = real.size === this.visibleCounts.size && [...real].every(([name, n]) => this.visibleCounts.get(name) === n);
    if (!same) this.staleStats++;
    return this.visibleCounts;
  }

  private stats() {
    const namespaces: Record<string, { vectorCount: number }> = {};
    let total = 0;
    for (const [name, n] of this.reportedCounts()) {
      if (n === 0) continue;
      namespaces[name] = { vectorCount: n };
      total += n;
    }
    return { namespaces, dimension: this.dimension ?? 0, indexFullness: 0, totalVectorCount: total, metric: 'cosine', vectorType: 'dense' };
  }

  private fetch(url: URL) {
    const ids = url.searchParams.getAll('ids');
    if (ids.length === 0) throw new HttpError(400, 'ids are required');
    if (ids.length > 1000) throw new HttpError(400, 'at most 1000 ids per fetch');
    const name = this.ns(url.searchParams.get('namespace') ?? undefined);
    const store = this.namespaces.get(name);
    const vectors: Record<string, { id: string; values: number[]; metadata?: Meta }> = {};
    for (const id of ids) {
      const v = store?.get(id);
      if (v) vectors[id] = { id, values: v.values, ...(v.metadata ? { metadata: v.metadata } : {}) };
    }
    return { vectors, namespace: name === '__default__' ? '' : name, usage: { readUnits: 1 } };
  }
}
