/**
 * The Manyfold HTTP API: `createApp(deps)` builds a Hono app (routes defined with @hono/zod-openapi, so
 * /openapi.json is generated from the zod schemas that validate the requests) over injected dependencies:
 * config, the encoder registry, a VectorIndex, the file store, a pino logger. See docs/api.md.
 *
 * This file boots the served model and the background managers, then composes the middleware (middleware/) and the
 * routes (routes/, one module per resource). Middleware order for /v1/*: request id -> access log + metrics ->
 * follow the active model -> bearer auth -> per-key rate limit -> content type (415) -> body size (413) -> route
 * validation (400 malformed JSON, 422 schema) -> handler.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { ManyfoldConfig } from '../config.js';
import type { VectorIndex } from '../index/types.js';
import { tf } from '../engine/tf.js';
import { ActivationManager, type ActivationHooks } from './activation.js';
import { inProcessRunner, type BackgroundRunner } from './background.js';
import { KeyRing, type ApiKeyEntry } from './auth.js';
import { mountDashboard } from './dashboard/index.js';
import { EncoderQueue } from './encoderQueue.js';
import { ApiError, formatPath } from './errors.js';
import { ApiMetrics } from './metrics.js';
import { authenticated } from './middleware/auth.js';
import { bodyContentTypes } from './middleware/content-type.js';
import { installErrorHandling } from './middleware/errors.js';
import { followActiveModel } from './middleware/follow-active.js';
import { requestLog } from './middleware/request-log.js';
import { ProbeManager, type ProbeHooks } from './probes.js';
import { RateLimiter } from './rateLimit.js';
import type { ModelRegistry } from './registry.js';
import { failWith, requestHelpers, type Env, type RouteContext } from './routes/context.js';
import { registerDocRoutes } from './routes/docs.js';
import { registerEmbedRoutes } from './routes/embed.js';
import { registerItemRoutes } from './routes/items.js';
import { registerModelRoutes } from './routes/models.js';
import { registerOpsRoutes } from './routes/ops.js';
import { registerProbeRoutes } from './routes/probes.js';
import { registerSearchRoutes } from './routes/search.js';
import { buildSchemas } from './schemas.js';
import { physicalNamespace, RetrievalService } from './service.js';
import type { Store } from './store.js';

export interface AppDeps {
  config: ManyfoldConfig;
  registry: ModelRegistry;
  index: VectorIndex;
  store: Store;
  logger: Logger;
  /** API keys (hashed): configured (auth.ts configuredApiKeys) or generated on Node (src/node/keys.ts) */
  keys: ApiKeyEntry[];
  /** ms clock for rate limiting (tests) */
  clock?: () => number;
  hooks?: { activation?: ActivationHooks; probes?: ProbeHooks };
  /** where probes and activations run after their 202 (background.ts); default in-process (Node) */
  background?: BackgroundRunner;
}

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

  // ---------------------------------------------------------------------------- app, middleware, routes
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
  const fail = failWith();
  installErrorHandling(app, fail, logger, limits.maxBodyBytes);
  const keyring = new KeyRing(deps.keys);
  const limiter = new RateLimiter(limits.ratePerSecond, limits.rateBurst, deps.clock);
  app.use('*', requestLog(logger, metrics));
  app.use(
    '/v1/*',
    followActiveModel({ background, store, service, registry, activation, logger }),
    authenticated(keyring, limiter, metrics, limits),
    bodyContentTypes(),
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: () => {
        throw new ApiError(413, 'body_too_large', `request body exceeds ${limits.maxBodyBytes} bytes`);
      },
    }),
  );

  const ctx: RouteContext = { app, S, config, service, registry, index, store, activation, probes, keyring, metrics, fail, ...requestHelpers(config, service) };
  registerOpsRoutes(ctx);
  registerEmbedRoutes(ctx);
  registerItemRoutes(ctx);
  registerSearchRoutes(ctx);
  registerModelRoutes(ctx);
  registerProbeRoutes(ctx);
  // the dashboard (+ GET /v1/items/{id}/image)
  mountDashboard(app, { store, defaultNamespace: config.server.defaultNamespace });
  registerDocRoutes(ctx);

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
