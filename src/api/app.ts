/**
 * The Manyfold HTTP API: `createApp(deps)` builds a Hono app (routes defined with @hono/zod-openapi, so
 * /openapi.json is generated from the zod schemas that validate the requests) over injected dependencies:
 * config, the encoder registry, a VectorIndex, the file store, a pino logger. See docs/api.md.
 *
 * Middleware order for /v1/*: request id -> access log + metrics -> bearer auth -> per-key rate limit ->
 * content type (415) -> body size (413) -> route validation (400 malformed JSON, 422 schema) -> handler.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ManyfoldConfig } from '../config.js';
import { isIndexError } from '../index/errors.js';
import type { VectorIndex } from '../index/types.js';
import { tf } from '../engine/tf.js';
import { ActivationManager, type ActivationHooks } from './activation.js';
import { inProcessRunner, waitUntilOf, type BackgroundRunner } from './background.js';
import { KeyRing, requireScope, type ApiKeyEntry, type Scope } from './auth.js';
import { mountDashboard } from './dashboard/index.js';
import { docsHtml, scalarScriptPath } from './docs.js';
import { EncoderQueue } from './encoderQueue.js';
import { ApiError, errorBody, formatPath, type ErrorStatus } from './errors.js';
import { checkImage, decodeBase64Image, type CheckedImage } from './images.js';
import { ApiMetrics } from './metrics.js';
import { ProbeManager, type ProbeHooks } from './probes.js';
import { RateLimiter } from './rateLimit.js';
import type { ModelRegistry } from './registry.js';
import { buildSchemas, ErrorSchema, USER_NAMESPACE } from './schemas.js';
import { physicalNamespace, RetrievalService, type ItemInput, type Target } from './service.js';
import type { Store } from './store.js';
import { readFile } from 'node:fs/promises';

export interface AppDeps {
  config: ManyfoldConfig;
  registry: ModelRegistry;
  index: VectorIndex;
  store: Store;
  logger: Logger;
  /** API keys (hashed); see auth.ts resolveApiKeys */
  keys: ApiKeyEntry[];
  /** ms clock for rate limiting (tests) */
  clock?: () => number;
  hooks?: { activation?: ActivationHooks; probes?: ProbeHooks };
  /** where probes and activations run after their 202 (background.ts); default in-process (Node) */
  background?: BackgroundRunner;
}

type Env = { Variables: { requestId: string; key?: ApiKeyEntry; route?: string } };

export interface ManyfoldApi {
  app: OpenAPIHono<Env>;
  service: RetrievalService;
  activation: ActivationManager;
  probes: ProbeManager;
  background: BackgroundRunner;
  queue: EncoderQueue;
  metrics: ApiMetrics;
  /** stops background jobs (they resume at the next start) and frees models; does not close the index */
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
/**
 * With a distributed runner an activation may finish in another isolate / container (a queue consumer), which
 * switches state.active in the store; the others follow it at their next request, reading the state at most this
 * often (one store read; a switch is then seen within this many ms).
 */
const ACTIVE_SYNC_MS = 2000;

export async function createApp(deps: AppDeps): Promise<ManyfoldApi> {
  const { config, registry, index, store, logger } = deps;
  const limits = config.limits;
  const S = buildSchemas(limits);
  const queue = new EncoderQueue(limits.microBatch);
  const metrics = new ApiMetrics(() => queue.depth);
  queue.onBatch = (kind, size, seconds) => {
    if (kind !== 'task') metrics.encoderBatch.observe({ kind }, size);
    metrics.encoderSeconds.observe({ kind }, seconds);
  };
  const service = new RetrievalService(config, registry, index, store, queue, logger);
  service.onIndexQuery = (seconds) => metrics.indexSeconds.observe(seconds);

  // ---------------------------------------------------------------------------- the active model
  const warnings = await registry.scan();
  for (const w of warnings) logger.warn({ artifact: w }, 'skipping unreadable model artifact');
  const state = await store.getState();
  let activeId = state.active && registry.has(state.active) ? state.active : registry.defaultId;
  if (!activeId) throw new Error(`no model artifact found in ${registry.sources.join(', ')}`);
  if (state.active && state.active !== activeId) logger.warn({ stateActive: state.active, using: activeId }, 'the active model in state.json is not available; serving the default model');
  await service.activate(activeId);
  if (!state.active) await store.putState({ active: activeId });
  const background = deps.background ?? inProcessRunner();
  const activation = new ActivationManager(service, registry, store, logger, deps.hooks?.activation, background);
  const probes = new ProbeManager(service, store, logger, limits, metrics, deps.hooks?.probes, background);
  await activation.recover();
  await probes.recover();
  // open tables and load ANN indexes before the first request (LanceDB)
  const warmable = index as VectorIndex & { warm?: (ns: string) => Promise<void> };
  if (typeof warmable.warm === 'function') {
    for (const n of await store.namespaces()) {
      for (const t of ['images', 'texts'] as const) await warmable.warm(physicalNamespace(n, service.active.tag, t)).catch(() => undefined);
    }
    for (const t of ['images', 'texts'] as const) await warmable.warm(physicalNamespace(config.server.defaultNamespace, service.active.tag, t)).catch(() => undefined);
  }

  const keyring = new KeyRing(deps.keys);
  const limiter = new RateLimiter(limits.ratePerSecond, limits.rateBurst, deps.clock);

  // ---------------------------------------------------------------------------- app + errors
  const app = new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        let path = [...(issue?.path ?? [])] as PropertyKey[];
        if (issue?.code === 'unrecognized_keys') path = [...path, issue.keys[0]];
        const field = formatPath(path);
        const msg = issue?.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : (issue?.message ?? 'invalid request');
        throw new ApiError(422, 'validation_error', field ? `${field}: ${msg}` : msg, field || undefined);
      }
    },
  });

  const fail = (c: Context<Env>, status: ErrorStatus, code: string, message: string, field?: string, headers?: Record<string, string>) => {
    if (headers) for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return c.json(errorBody(code, message, field, c.get('requestId')), status);
  };

  app.onError((err, c) => {
    if (err instanceof ApiError) return fail(c, err.status, err.code, err.message, err.field, err.headers);
    if (isIndexError(err)) {
      // a write to the edge's read-only memory snapshot: the message names the index to configure
      if (err.code === 'READ_ONLY') return fail(c, 409, 'index_read_only', err.message, err.field);
      if (err.code === 'BACKEND') {
        logger.error({ reqId: c.get('requestId'), err: err.message }, 'index backend error');
        return fail(c, 503, 'index_unavailable', 'the vector index failed; retry later');
      }
      return fail(c, 422, err.code === 'INVALID_FILTER' ? 'invalid_filter' : 'invalid_argument', err.message, err.field);
    }
    if (err instanceof HTTPException) {
      if (err.status === 413) return fail(c, 413, 'body_too_large', `request body exceeds ${limits.maxBodyBytes} bytes`);
      if (err.status === 400) return fail(c, 400, 'invalid_json', /json/i.test(err.message) ? 'request body is not valid JSON' : err.message || 'bad request');
      return fail(c, err.status as ErrorStatus, 'http_error', err.message || 'request failed');
    }
    logger.error({ reqId: c.get('requestId'), err: (err as Error).message, stack: (err as Error).stack }, 'unhandled error');
    return fail(c, 500, 'internal', 'internal error; quote the request id when reporting it');
  });
  app.notFound((c) => fail(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`));

  // request id + access log + metrics
  app.use('*', async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const id = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    c.set('requestId', id);
    c.header('X-Request-Id', id);
    const t0 = performance.now();
    await next();
    const ms = performance.now() - t0;
    const route = c.req.routePath && c.req.routePath !== '/*' && c.req.routePath !== '*' ? c.req.routePath : 'unmatched';
    metrics.requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    metrics.latency.observe({ method: c.req.method, route }, ms / 1000);
    const key = c.get('key');
    logger.info({ reqId: id, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms * 100) / 100, ...(key ? { key: key.id } : {}) }, 'request');
  });

  const authed: MiddlewareHandler<Env> = async (c, next) => {
    const key = keyring.authenticate(c.req.header('authorization'));
    c.set('key', key);
    const wait = limiter.take(key.id);
    if (wait > 0) {
      metrics.rateLimited.inc();
      throw new ApiError(429, 'rate_limited', `rate limit of ${limits.ratePerSecond} requests/s (burst ${limits.rateBurst}) exceeded`, undefined, { 'Retry-After': String(wait) });
    }
    await next();
  };
  const bodyContentTypes: MiddlewareHandler<Env> = async (c, next) => {
    if (c.req.method === 'POST' || c.req.method === 'PUT') {
      const ct = (c.req.header('content-type') ?? '').toLowerCase();
      const multipartOk = c.req.path === '/v1/items' || c.req.path === '/v1/search';
      const hasBody = c.req.header('content-length') !== '0' && c.req.raw.body !== null;
      const isActivate = /^\/v1\/models\/[^/]+\/activate$/.test(c.req.path);
      if (!(isActivate && !hasBody) && !ct.startsWith('application/json') && !(multipartOk && ct.startsWith('multipart/form-data'))) {
        throw new ApiError(415, 'unsupported_media_type', `send Content-Type: application/json${multipartOk ? ' or multipart/form-data' : ''}`);
      }
    }
    await next();
  };
  let activeCheckedAt = Date.now();
  const followActiveModel: MiddlewareHandler<Env> = async (_c, next) => {
    if (background.distributed && Date.now() - activeCheckedAt >= ACTIVE_SYNC_MS) {
      activeCheckedAt = Date.now();
      const st = await store.getState();
      if (st.active && st.active !== service.active.id && !activation.running) {
        if (!registry.has(st.active)) await registry.scan();
        if (registry.has(st.active)) {
          const from = service.active.id;
          await service.activate(st.active);
          logger.info({ model: st.active, from }, 'switched to the model another instance activated');
        } else logger.warn({ stateActive: st.active }, 'the active model in the store is not available here: still serving the previous one');
      }
    }
    await next();
  };
  app.use('/v1/*', followActiveModel, authed, bodyContentTypes, bodyLimit({ maxSize: limits.maxBodyBytes, onError: () => { throw new ApiError(413, 'body_too_large', `request body exceeds ${limits.maxBodyBytes} bytes`); } }));

  const scope = (c: Context<Env>, ...s: Scope[]) => requireScope(c.get('key')!, ...s);
  /** scope check as route middleware: runs before the body is validated (403 before 422) */
  const needs =
    (...s: Scope[]): MiddlewareHandler<Env> =>
    async (c, next) => {
      requireScope(c.get('key')!, ...s);
      await next();
    };
  const ns = (n: string | undefined) => n ?? config.server.defaultNamespace;
  const errResponses = Object.fromEntries(
    ([400, 401, 403, 404, 409, 413, 415, 422, 429] as const).map((s) => [s, { content: { 'application/json': { schema: ErrorSchema } }, description: 'error' }]),
  );
  const security = [{ bearer: [] as string[] }];
  const image = async (b64: string, field: string): Promise<CheckedImage> => checkImage(decodeBase64Image(b64, field, service.limits), field, service.limits);
  const fileImage = async (v: unknown, field: string): Promise<CheckedImage> => {
    if (!(v instanceof File)) throw new ApiError(422, 'validation_error', `${field}: expected a file part`, field);
    if (v.size > limits.maxImageBytes) throw new ApiError(413, 'image_too_large', `image exceeds ${limits.maxImageBytes} bytes`, field);
    return checkImage(Buffer.from(await v.arrayBuffer()), field, service.limits);
  };
  const jsonField = (v: unknown, field: string): unknown => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ApiError(422, 'validation_error', `${field}: expected a JSON string`, field);
    try {
      return JSON.parse(v);
    } catch {
      throw new ApiError(400, 'invalid_json', `${field} is not valid JSON`, field);
    }
  };
  const parseWith = <T>(schema: z.ZodType<T>, value: unknown): T => {
    const r = schema.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0];
      const field = formatPath(issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path);
      throw new ApiError(422, 'validation_error', field ? `${field}: ${issue.message}` : issue.message, field || undefined);
    }
    return r.data;
  };

  // ---------------------------------------------------------------------------- operational routes
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => {
    try {
      await index.stats(`${config.server.defaultNamespace}--${service.active.tag}--img`);
      return c.json({ ready: true, model: service.active.id, index: index.kind, activation: activation.running?.id ?? null });
    } catch {
      return fail(c, 503, 'not_ready', 'the vector index is not answering');
    }
  });
  app.get('/metrics', async (c) => {
    if (!config.server.metricsPublic) {
      const key = keyring.authenticate(c.req.header('authorization'));
      requireScope(key, 'admin');
    }
    return c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType });
  });

  // ---------------------------------------------------------------------------- /v1/embed
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/embed',
      tags: ['search'],
      summary: 'Embed texts and/or images with the active model (scope: search)',
      security,
      middleware: [needs('search')],
      request: { body: { content: { 'application/json': { schema: S.EmbedRequest } }, required: true } },
      responses: { 200: { content: { 'application/json': { schema: S.EmbedResponse } }, description: 'embeddings (L2-normalised) and token ids' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'search');
      const body = c.req.valid('json');
      const model = service.active;
      const imgs = body.images ? await Promise.all(body.images.map((b, i) => image(b, `images[${i}]`))) : undefined;
      const [texts, images] = await Promise.all([
        body.texts ? Promise.all(body.texts.map((t) => service.embedQueryText(t, model))) : undefined,
        imgs ? Promise.all(imgs.map((im, i) => service.embedQueryImage(im, `images[${i}]`, model))) : undefined,
      ]);
      const inputIds = body.texts?.map((t) => model.encoder.tokenizer.encode(t));
      return c.json(
        {
          model: model.id,
          dim: model.encoder.dim,
          ...(texts ? { texts: texts.map((v) => Array.from(v)), inputIds } : {}),
          ...(images ? { images: images.map((v) => Array.from(v)) } : {}),
        },
        200,
      );
    },
  );

  // ---------------------------------------------------------------------------- /v1/items
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/items',
      tags: ['items'],
      summary: 'Upsert items (idempotent by id): image and/or captions and metadata (scope: write)',
      description: 'JSON with base64 images, or multipart/form-data with one item (fields id, image file, captions repeated, metadata as JSON, namespace).',
      security,
      middleware: [needs('write')],
      request: {
        body: {
          content: { 'application/json': { schema: S.UpsertRequest }, 'multipart/form-data': { schema: S.UpsertMultipart } },
        },
      },
      responses: { 200: { content: { 'application/json': { schema: S.UpsertResponse } }, description: 'per item: created, updated or unchanged' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'write');
      const ct = c.req.header('content-type') ?? '';
      let namespace: string;
      let inputs: ItemInput[];
      if (ct.toLowerCase().startsWith('multipart/form-data')) {
        const form = await c.req.parseBody({ all: true });
        const caps = form.captions === undefined ? undefined : Array.isArray(form.captions) ? form.captions : [form.captions];
        const raw = {
          id: form.id,
          ...(caps ? { captions: caps } : {}),
          ...(form.metadata !== undefined ? { metadata: jsonField(form.metadata, 'metadata') } : {}),
        };
        const hasImage = form.image !== undefined;
        const item = parseWith(S.ItemInput, { ...raw, ...(hasImage ? { image: 'AA==' } : {}) });
        namespace = ns(form.namespace === undefined ? undefined : parseWith(S.Namespace, form.namespace));
        const img = hasImage ? await fileImage(form.image, 'image') : undefined;
        inputs = [{ id: item.id, captions: item.captions, metadata: item.metadata, ...(img ? { image: img } : {}) }];
      } else {
        const body = c.req.valid('json') as z.infer<typeof S.UpsertRequest>;
        namespace = ns(body.namespace);
        inputs = [];
        for (let i = 0; i < body.items.length; i++) {
          const it = body.items[i];
          inputs.push({ id: it.id, captions: it.captions, metadata: it.metadata, ...(it.image ? { image: await image(it.image, `items[${i}].image`) } : {}) });
        }
      }
      const items = await service.upsertItems(namespace, inputs);
      return c.json({ namespace, model: service.active.id, items }, 200);
    },
  );

  const NsQuery = z.object({ namespace: S.Namespace.optional() });
  const IdParam = z.object({ id: z.string().min(1).max(256).openapi({ param: { name: 'id', in: 'path' } }) });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/items/{id}',
      tags: ['items'],
      summary: 'A stored item: captions, metadata, image reference (scope: search)',
      security,
      middleware: [needs('search')],
      request: { params: IdParam, query: NsQuery },
      responses: { 200: { content: { 'application/json': { schema: z.object({ item: z.unknown() }) } }, description: 'the item' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'search');
      const { id } = c.req.valid('param');
      const item = await store.getItem(ns(c.req.valid('query').namespace), id);
      if (!item) throw new ApiError(404, 'not_found', `no item ${JSON.stringify(id)}`, 'id');
      return c.json({ item }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/items/{id}',
      tags: ['items'],
      summary: 'Delete an item and its vectors (all models) (scope: write)',
      security,
      middleware: [needs('write')],
      request: { params: IdParam, query: NsQuery },
      responses: { 200: { content: { 'application/json': { schema: z.object({ deleted: z.string(), namespace: z.string() }) } }, description: 'deleted' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'write');
      const { id } = c.req.valid('param');
      const namespace = ns(c.req.valid('query').namespace);
      if (!(await service.deleteItem(namespace, id))) throw new ApiError(404, 'not_found', `no item ${JSON.stringify(id)} in namespace ${namespace}`, 'id');
      return c.json({ deleted: id, namespace }, 200);
    },
  );

  // ---------------------------------------------------------------------------- /v1/search
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/search',
      tags: ['search'],
      summary: 'Search by text or image; target images or texts (scope: search)',
      security,
      middleware: [needs('search')],
      request: {
        body: { content: { 'application/json': { schema: S.SearchRequest }, 'multipart/form-data': { schema: S.SearchMultipart } } },
      },
      responses: { 200: { content: { 'application/json': { schema: S.SearchResponse } }, description: 'ranked results and the model version that answered' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'search');
      const t0 = performance.now();
      const ct = c.req.header('content-type') ?? '';
      let q: { text?: string; image?: CheckedImage; target?: Target; topK: number; filter?: Record<string, unknown>; namespace?: string };
      if (ct.toLowerCase().startsWith('multipart/form-data')) {
        const form = await c.req.parseBody();
        const extra = Object.keys(form).find((k) => !['image', 'target', 'topK', 'filter', 'namespace'].includes(k));
        if (extra) throw new ApiError(422, 'validation_error', `unknown field ${extra}`, extra);
        const parsed = parseWith(S.SearchRequest, {
          image: 'AA==',
          ...(form.target !== undefined ? { target: form.target } : {}),
          ...(form.topK !== undefined ? { topK: Number(form.topK) } : {}),
          ...(form.filter !== undefined ? { filter: jsonField(form.filter, 'filter') } : {}),
          ...(form.namespace !== undefined ? { namespace: form.namespace } : {}),
        });
        q = { ...parsed, image: await fileImage(form.image, 'image') };
      } else {
        const body = c.req.valid('json') as z.infer<typeof S.SearchRequest>;
        q = { ...body, image: body.image !== undefined ? await image(body.image, 'image') : undefined };
      }
      if (q.filter !== undefined) service.checkFilter(q.filter);
      const model = service.active;
      const namespace = ns(q.namespace);
      const target: Target = q.target ?? (q.text !== undefined ? 'images' : 'texts');
      const vec = q.text !== undefined ? await service.embedQueryText(q.text, model) : await service.embedQueryImage(q.image!, 'image', model);
      const results = await service.queryVector(namespace, vec, target, q.topK, q.filter, model);
      return c.json({ results, model: model.id, namespace, target, tookMs: Math.round((performance.now() - t0) * 1000) / 1000 }, 200);
    },
  );

  // ---------------------------------------------------------------------------- /v1/models
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/models',
      tags: ['models'],
      summary: 'Models in the registry, which one is active (any scope)',
      security,
      responses: { 200: { content: { 'application/json': { schema: z.object({ active: z.string(), models: z.array(S.Model), activation: z.unknown() }) } }, description: 'models' }, ...errResponses },
    }),
    async (c) => {
      const st = await store.getState();
      const models = registry.list().map((m) => ({
        id: m.id,
        active: m.id === service.active.id,
        previous: m.id === st.previous,
        preset: m.preset,
        embedDim: m.embedDim,
        imageSize: m.imageSize,
        created: m.created,
        namespaceTag: m.tag,
        training: m.training,
        metrics: m.metrics,
      }));
      return c.json({ active: service.active.id, models, activation: activation.running ?? null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/models/{id}/activate',
      tags: ['models'],
      summary: 'Blue/green activation: re-embed every item with this model, verify, then switch (scope: admin)',
      security,
      middleware: [needs('admin')],
      request: { params: IdParam },
      responses: { 202: { content: { 'application/json': { schema: z.object({ job: S.Job }) } }, description: 'the background job (poll GET /v1/jobs/{id})' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'admin');
      const { id } = c.req.valid('param');
      await registry.scan(); // pick up artifacts copied into a source directory since start
      const job = await activation.start(id, waitUntilOf(c));
      const { checkpoint: _cp, ...pub } = job;
      return c.json({ job: pub } as never, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/jobs/{id}',
      tags: ['models'],
      summary: 'An activation job: status, progress, verification (scope: admin)',
      security,
      middleware: [needs('admin')],
      request: { params: IdParam },
      responses: { 200: { content: { 'application/json': { schema: z.object({ job: S.Job }) } }, description: 'the job' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'admin');
      const job = await activation.get(c.req.valid('param').id);
      if (!job) throw new ApiError(404, 'not_found', 'no such job', 'id');
      const { checkpoint: _cp, ...pub } = job;
      return c.json({ job: pub } as never, 200);
    },
  );

  // ---------------------------------------------------------------------------- /v1/probes
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/probes',
      tags: ['probes'],
      summary: 'Start an attack probe against the live encoder and index (scope: probe)',
      security,
      middleware: [needs('probe')],
      request: { body: { content: { 'application/json': { schema: S.ProbeRequest } }, required: true } },
      responses: { 202: { content: { 'application/json': { schema: z.object({ probe: S.Probe }) } }, description: 'queued probe' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'probe');
      const body = c.req.valid('json');
      if (body.namespace !== undefined && !USER_NAMESPACE.test(body.namespace)) throw new ApiError(422, 'validation_error', 'bad namespace', 'namespace');
      const probe = await probes.create({ ...body, namespace: ns(body.namespace) }, c.get('key')!.id, waitUntilOf(c));
      return c.json({ probe: probes.public(probe) } as never, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/probes',
      tags: ['probes'],
      summary: 'Probes, newest first, without their reports (scope: probe)',
      security,
      middleware: [needs('probe')],
      responses: { 200: { content: { 'application/json': { schema: z.object({ probes: z.array(z.unknown()) }) } }, description: 'probes' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'probe');
      return c.json({ probes: (await probes.list()).map((p) => probes.summary(p)) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/probes/{id}',
      tags: ['probes'],
      summary: 'A probe: status, progress and (when done) the report; ?format=html for the HTML report (scope: probe)',
      security,
      middleware: [needs('probe')],
      request: { params: IdParam, query: z.object({ format: z.enum(['json', 'html']).optional() }) },
      responses: {
        200: { content: { 'application/json': { schema: z.object({ probe: S.Probe }) }, 'text/html': { schema: z.string() } }, description: 'the probe' },
        ...errResponses,
      },
    }),
    async (c) => {
      scope(c, 'probe');
      const { id } = c.req.valid('param');
      const p = await probes.get(id);
      if (!p) throw new ApiError(404, 'not_found', 'no such probe', 'id');
      if (c.req.valid('query').format === 'html') {
        const html = await probes.html(p);
        return c.html(html, 200) as never;
      }
      return c.json({ probe: probes.public(p) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/probes/{id}',
      tags: ['probes'],
      summary: 'Cancel a queued or running probe; delete a finished one (scope: probe)',
      security,
      middleware: [needs('probe')],
      request: { params: IdParam },
      responses: { 200: { content: { 'application/json': { schema: z.object({ id: z.string(), status: z.string() }) } }, description: 'canceled or deleted' }, ...errResponses },
    }),
    async (c) => {
      scope(c, 'probe');
      const { id } = c.req.valid('param');
      const r = await probes.cancelOrDelete(id);
      if (!r) throw new ApiError(404, 'not_found', 'no such probe', 'id');
      return c.json({ id, status: r }, 200);
    },
  );

  // ---------------------------------------------------------------------------- dashboard (+ GET /v1/items/{id}/image)
  mountDashboard(app, { store, defaultNamespace: config.server.defaultNamespace });

  // ---------------------------------------------------------------------------- docs
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'an API key from MANYFOLD_API_KEYS' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Manyfold API', version: '1', description: 'Robust image–text retrieval: ingest, search, blue/green model activation, live attack probes. See docs/api.md.' },
  });
  app.get('/docs', (c) => c.html(docsHtml('/openapi.json', '/docs/scalar.js')));
  let scalarJs: Promise<string> | undefined;
  app.get('/docs/scalar.js', async (c) => {
    scalarJs ??= readFile(scalarScriptPath(), 'utf8');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(await scalarJs, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  });

  return {
    app,
    service,
    activation,
    probes,
    background,
    queue,
    metrics,
    async close() {
      await probes.stop();
      await activation.stop();
      queue.drainReject(new Error('server shutting down'));
      await registry.close();
      void tf;
    },
  };
}
