/**
 * TargetClient: one search at a time against a retrieval system described by a target spec (schema.ts).
 *
 * Politeness and boundedness are the client's job, not the caller's: a token bucket and a semaphore shared by
 * every call cap the request rate and the requests in flight; `maxQueries` caps the requests of the client's
 * whole life (retries included, so a misbehaving target cannot make the probe exceed what its owner allowed);
 * every attempt has a timeout, every retry loop a bound and every wait a ceiling (maxBackoffMs).
 *
 * Errors are TargetErrors with a kind the runner can act on; `fatal` ones (auth, budget, unsupported) mean the
 * next query would fail the same way, so the runner stops and reports what it has.
 */
import { displayUrl, type TargetResponseSpec, type TargetSpec } from './schema.js';
import { RankSourceError } from '../../eval/robust/rank-source.js';

export type TargetQuery = { kind: 'text'; text: string } | { kind: 'image'; bytes: Uint8Array; mime: 'image/png' | 'image/jpeg' };

export interface TargetHit {
  id: string;
  /** higher = more similar (distances of a 'lower-better' target are negated); absent for a rank-only target */
  score?: number;
}

export type TargetErrorKind = 'auth' | 'malformed' | 'timeout' | 'rate-limited' | 'http' | 'network' | 'budget' | 'unsupported';

const FATAL_KINDS: ReadonlySet<TargetErrorKind> = new Set(['auth', 'budget', 'unsupported']);

/** a target's failure, as the probe runner sees any rank source's (fatal = stop and report partial: auth, budget, unsupported) */
export class TargetError extends RankSourceError {
  constructor(
    override readonly kind: TargetErrorKind,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(kind, message, FATAL_KINDS.has(kind), options);
    this.name = 'TargetError';
  }
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface TargetStats {
  /** HTTP requests sent, retries included */
  requests: number;
  /** search() calls that returned hits */
  queries: number;
  retries: number;
  /** search() calls that threw, by kind (a call counts once, whatever its retries) */
  failures: Partial<Record<TargetErrorKind, number>>;
  /** per successful request (wall time of that attempt, sending to body read); all zeros while count is 0 */
  latencyMs: LatencySummary;
  /** null = unlimited */
  budgetLeft: number | null;
}

export interface TargetAttempt {
  query: TargetQuery['kind'];
  status?: number;
  ms: number;
  /** 0 for the first attempt of a search, then 1, 2, ... */
  retry: number;
  error?: TargetErrorKind;
}

export interface TargetClientOptions {
  /** injectable for tests */
  fetch?: typeof fetch;
  /** backoff and rate-limit waits (not the request timeout, which is a real timer) */
  sleep?: (ms: number) => Promise<void>;
  /** wall clock in ms (default Date.now): latencies, the token bucket and Retry-After dates */
  now?: () => number;
  onAttempt?: (e: TargetAttempt) => void;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

interface Route {
  kind: TargetQuery['kind'];
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers: Record<string, string>;
  response: TargetResponseSpec;
  /** `METHOD url (kind query)` with no secrets in it, for messages */
  label: string;
}

interface Prepared {
  url: string;
  init: RequestInit;
}

type AttemptOutcome = { hits: TargetHit[] } | { error: TargetError; retryable: boolean; retryAfterMs?: number };

const WHOLE_PLACEHOLDER = /^\{\{([^{}]*)\}\}$/;
const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;

/** `"{{topK}}"` alone becomes the value itself (a number stays a number); inside a longer string, its text */
function fillTemplate(value: Json, vars: Record<string, string | number>): Json {
  if (typeof value === 'string') {
    const whole = WHOLE_PLACEHOLDER.exec(value);
    if (whole && Object.hasOwn(vars, whole[1])) return vars[whole[1]];
    return value.replace(PLACEHOLDER, (m, name: string) => (Object.hasOwn(vars, name) ? String(vars[name]) : m));
  }
  if (Array.isArray(value)) return value.map((v) => fillTemplate(v, vars));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillTemplate(v, vars)]));
  return value;
}

function fillText(value: string | number | boolean, vars: Record<string, string | number>): string {
  return String(fillTemplate(value, vars));
}

function pathSegments(path: string): string[] {
  if (path === '$') return [];
  return (path.startsWith('$.') ? path.slice(2) : path).split('.');
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** the value at a dotted path; on a miss, which segment was missing */
function lookup(root: unknown, path: string): { found: true; value: unknown } | { found: false; missing: string } {
  let cur: unknown = root;
  const segs = pathSegments(path);
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    if (Array.isArray(cur) && /^\d+$/.test(seg) && Number(seg) < cur.length) cur = cur[Number(seg)];
    else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur) && Object.hasOwn(cur, seg)) cur = (cur as Record<string, unknown>)[seg];
    else return { found: false, missing: `no "${seg}" in ${i === 0 ? 'the value' : `"${segs.slice(0, i).join('.')}"`} (${describeValue(cur)})` };
  }
  return { found: true, value: cur };
}

function snippet(body: string): string {
  const s = body.replace(/\s+/g, ' ').trim();
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/** Retry-After in ms (delay-seconds or an HTTP date), undefined when absent or unreadable */
export function parseRetryAfter(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  const h = header.trim();
  if (/^\d+(\.\d+)?$/.test(h)) return Number(h) * 1000;
  const date = Date.parse(h);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** nearest-rank percentiles: every reported value is one that was measured */
export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return {
    count: sorted.length,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: sorted[sorted.length - 1],
    mean: sorted.reduce((s, x) => s + x, 0) / sorted.length,
  };
}

/** FIFO semaphore: waiters are served in arrival order, so no search starves */
class Semaphore {
  private readonly waiters: (() => void)[] = [];

  constructor(private free: number) {}

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * Token bucket that hands out reservations: a caller takes a token now even if the bucket is empty (going into
 * debt) and is told how long to wait for it. Reservations are therefore served in call order with waits
 * computed once, instead of callers waking together and racing for the next token.
 */
class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  reserve(): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, t - this.last) * this.ratePerSecond) / 1000);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.ratePerSecond;
  }
}

export class TargetClient {
  readonly spec: TargetSpec;
  /** the query kinds the target accepts */
  readonly modalities: readonly TargetQuery['kind'][];

  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly onAttempt?: (e: TargetAttempt) => void;
  private readonly routes: Partial<Record<TargetQuery['kind'], Route>> = {};
  private readonly slots: Semaphore;
  private readonly bucket?: TokenBucket;

  private budgetLeft: number | null;
  private requests = 0;
  private queries = 0;
  private retries = 0;
  private readonly failures: Partial<Record<TargetErrorKind, number>> = {};
  private readonly latencies: number[] = [];

  constructor(spec: TargetSpec, opts: TargetClientOptions = {}) {
    this.spec = spec;
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = opts.now ?? Date.now;
    this.onAttempt = opts.onAttempt;
    const limits = spec.limits;
    this.slots = new Semaphore(limits.concurrency);
    if (limits.ratePerSecond !== undefined) this.bucket = new TokenBucket(limits.ratePerSecond, limits.burst, this.now);
    this.budgetLeft = limits.maxQueries ?? null;
    for (const kind of ['text', 'image'] as const) {
      const section = spec[kind];
      if (!section) continue;
      const method = section.method ?? spec.request.method;
      this.routes[kind] = {
        kind,
        method,
        url: section.url ?? spec.request.url,
        headers: { ...spec.request.headers, ...(section.headers ?? {}) },
        response: section.response ?? spec.response,
        label: `${method} ${displayUrl(spec, kind)} (${kind} query)`,
      };
    }
    this.modalities = (['text', 'image'] as const).filter((k) => this.routes[k]);
  }

  /** One search; resolves to hits best first (at most topK); throws TargetError. */
  async search(q: TargetQuery, topK: number): Promise<TargetHit[]> {
    if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`TargetClient.search: topK must be a positive integer (got ${topK})`);
    try {
      const hits = await this.searchWithRetries(q, topK);
      this.queries++;
      return hits;
    } catch (e) {
      if (e instanceof TargetError) this.failures[e.kind] = (this.failures[e.kind] ?? 0) + 1;
      throw e;
    }
  }

  stats(): TargetStats {
    return {
      requests: this.requests,
      queries: this.queries,
      retries: this.retries,
      failures: { ...this.failures },
      latencyMs: summarizeLatencies(this.latencies),
      budgetLeft: this.budgetLeft,
    };
  }

  private async searchWithRetries(q: TargetQuery, topK: number): Promise<TargetHit[]> {
    const route = this.routes[q.kind];
    if (!route) {
      throw new TargetError('unsupported', `${this.spec.name}: the target takes no ${q.kind} queries (its spec has no "${q.kind}" section)`);
    }
    this.checkBudget(route);
    const prepared = this.prepare(route, q, topK);
    const { retries, backoffMs, maxBackoffMs } = this.spec.limits;
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.attempt(route, prepared, topK, attempt);
      if ('hits' in outcome) return outcome.hits;
      if (!outcome.retryable || attempt >= retries) throw outcome.error;
      const backoff = backoffMs * 2 ** attempt;
      // the server's Retry-After replaces our guess, but no wait may exceed maxBackoffMs
      const wait = Math.min(maxBackoffMs, outcome.retryAfterMs ?? backoff);
      this.retries++;
      if (wait > 0) await this.sleep(wait);
    }
  }

  private checkBudget(route: Route): void {
    if (this.budgetLeft === 0) {
      throw new TargetError('budget', `${this.spec.name}: query budget of ${this.spec.limits.maxQueries} requests (limits.maxQueries) is spent; ${route.label} not sent`);
    }
  }

  private prepare(route: Route, q: TargetQuery, topK: number): Prepared {
    const headers = new Headers({ accept: 'application/json', 'user-agent': 'manyfold-probe' });
    for (const [k, v] of Object.entries(route.headers)) headers.set(k, v);
    const url = new URL(route.url);
    if (q.kind === 'text') {
      const vars = { text: q.text, topK };
      const text = this.spec.text!;
      for (const [k, v] of Object.entries(text.query ?? {})) url.searchParams.append(k, fillText(v, vars));
      if (route.method === 'GET') return { url: url.href, init: { method: 'GET', headers } };
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return { url: url.href, init: { method: route.method, headers, body: JSON.stringify(fillTemplate(text.body as Json, vars)) } };
    }
    const image = this.spec.image!;
    const bytes = new Uint8Array(q.bytes); // a copy backed by a plain ArrayBuffer, as Blob and fetch require
    const vars: Record<string, string | number> = { imageMime: q.mime, topK };
    for (const [k, v] of Object.entries(image.query ?? {})) url.searchParams.append(k, fillText(v, vars));
    if (image.encoding === 'json') {
      vars.imageBase64 = Buffer.from(bytes).toString('base64');
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return { url: url.href, init: { method: route.method, headers, body: JSON.stringify(fillTemplate(image.body as Json, vars)) } };
    }
    if (image.encoding === 'multipart') {
      const form = new FormData();
      // text parts first: streaming multipart parsers often need them before the file
      for (const [k, v] of Object.entries(image.fields)) form.append(k, fillText(v, vars));
      form.append(image.field, new Blob([bytes], { type: q.mime }), image.filename ?? (q.mime === 'image/png' ? 'query.png' : 'query.jpg'));
      return { url: url.href, init: { method: route.method, headers, body: form } };
    }
    headers.set('content-type', q.mime);
    return { url: url.href, init: { method: route.method, headers, body: bytes } };
  }

  private async attempt(route: Route, prepared: Prepared, topK: number, retry: number): Promise<AttemptOutcome> {
    await this.slots.acquire();
    try {
      const wait = this.bucket?.reserve() ?? 0;
      if (wait > 0) await this.sleep(wait);
      // reserved after the waits, so concurrent searches can never send more than the budget between them
      this.checkBudget(route);
      if (this.budgetLeft !== null) this.budgetLeft--;
      this.requests++;
      const outcome = await this.send(route, prepared, topK);
      this.onAttempt?.({
        query: route.kind,
        ms: outcome.ms,
        retry,
        ...(outcome.status !== undefined ? { status: outcome.status } : {}),
        ...('error' in outcome.result ? { error: outcome.result.error.kind } : {}),
      });
      if ('hits' in outcome.result) this.latencies.push(outcome.ms);
      return outcome.result;
    } finally {
      this.slots.release();
    }
  }

  private async send(route: Route, prepared: Prepared, topK: number): Promise<{ result: AttemptOutcome; status?: number; ms: number }> {
    const { timeoutMs } = this.spec.request;
    const started = this.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let res: Response;
    let body: string;
    try {
      res = await this.fetchImpl(prepared.url, { ...prepared.init, signal: controller.signal });
      // the body is read under the same timer: a server that sends headers and then stalls is a timeout too
      body = await res.text();
    } catch (e) {
      const ms = this.now() - started;
      const error = controller.signal.aborted
        ? new TargetError('timeout', `${this.spec.name}: ${route.label}: no complete response within ${timeoutMs} ms (request.timeoutMs)`, undefined, { cause: e })
        : new TargetError('network', `${this.spec.name}: ${route.label}: ${networkReason(e)}`, undefined, { cause: e });
      return { result: { error, retryable: true }, ms };
    } finally {
      clearTimeout(timer);
    }
    const ms = this.now() - started;
    const status = res.status;
    const where = `${this.spec.name}: ${route.label}`;
    if (status >= 200 && status < 300) {
      try {
        return { result: { hits: extractHits(body, route.response, topK, where) }, status, ms };
      } catch (e) {
        if (e instanceof TargetError) return { result: { error: e, retryable: false }, status, ms };
        throw e;
      }
    }
    const detail = body.trim() ? `: ${snippet(body)}` : '';
    if (status === 401 || status === 403) {
      return { result: { error: new TargetError('auth', `${where}: HTTP ${status}: the target refused the credentials (request.headers)${detail}`, status), retryable: false }, status, ms };
    }
    if (status === 429 || status >= 500) {
      const kind = status === 429 ? 'rate-limited' : 'http';
      const error = new TargetError(kind, `${where}: HTTP ${status} after ${this.spec.limits.retries + 1} attempts (limits.retries ${this.spec.limits.retries})${detail}`, status);
      return { result: { error, retryable: true, retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), this.now()) }, status, ms };
    }
    return { result: { error: new TargetError('http', `${where}: HTTP ${status}${detail}`, status), retryable: false }, status, ms };
  }
}

function networkReason(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const cause = err?.cause;
  if (cause?.code || cause?.message) return `network error: ${[cause.code, cause.message].filter(Boolean).join(' ')}`;
  return `network error: ${err?.message ?? String(e)}`;
}

/**
 * Parses a 2xx body into hits. Only the first topK results are read: a malformed hit below the cut-off does
 * not fail a query whose answer is complete without it.
 */
export function extractHits(body: string, response: TargetResponseSpec, topK: number, where: string): TargetHit[] {
  const malformed = (reason: string) => new TargetError('malformed', `${where}: malformed response: ${reason}`);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw malformed(`not JSON: ${JSON.stringify(snippet(body))}`);
  }
  const results = lookup(json, response.results);
  if (!results.found) throw malformed(`response.results "${response.results}" not found: ${results.missing}`);
  if (!Array.isArray(results.value)) throw malformed(`response.results "${response.results}" is ${describeValue(results.value)}, not an array`);
  const hits: TargetHit[] = [];
  const rows = results.value.slice(0, topK);
  for (let i = 0; i < rows.length; i++) {
    const at = `${response.results}[${i}]`;
    const id = lookup(rows[i], response.id);
    if (!id.found) throw malformed(`${at}: response.id "${response.id}" not found: ${id.missing}`);
    const idValue = id.value;
    let idText: string;
    if (typeof idValue === 'string' && idValue.length > 0) idText = idValue;
    else if (typeof idValue === 'number' && Number.isFinite(idValue)) idText = String(idValue);
    else throw malformed(`${at}: response.id "${response.id}" is ${describeValue(idValue)}, not a non-empty string or a number`);
    const hit: TargetHit = { id: idText };
    if (response.score !== undefined) {
      const score = lookup(rows[i], response.score);
      if (!score.found) throw malformed(`${at}: response.score "${response.score}" not found: ${score.missing}`);
      if (typeof score.value !== 'number' || !Number.isFinite(score.value)) {
        throw malformed(`${at}: response.score "${response.score}" is ${describeValue(score.value)}, not a finite number`);
      }
      // 0 - d rather than -d: a distance of 0 becomes +0, not -0
      hit.score = response.scoreOrder === 'lower-better' ? 0 - score.value : score.value;
    }
    hits.push(hit);
  }
  return hits;
}
