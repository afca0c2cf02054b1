/**
 * Admin routes of the queue-driven re-index, added to the API's Hono app by the runtimes that have a queue
 * (src/cloudflare/worker.ts: Cloudflare Queues; src/aws/lambda.ts: SQS). They sit behind the app's /v1/* auth,
 * rate-limit and content-type middleware; every route needs the admin scope.
 *   POST /v1/reindex                  {"model": id, "batchSize"?: n}  -> 202 {plan}
 *   GET  /v1/reindex/{runId}          -> {status}   (progress + verification; state 'complete' when done)
 *   POST /v1/reindex/{runId}/activate {}  -> {status, active}  (409 unless complete and verified)
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { requireScope, type ApiKeyEntry } from '../api/auth.js';
import { ApiError } from '../api/errors.js';
import { assertIndexWritable } from '../index/capabilities.js';
import { activateReindexed, planReindex, reindexStatus, type ReindexDeps } from './pipeline.js';

const RUN_ID = /^[A-Za-z0-9_-]{1,80}$/;

export function registerReindexRoutes(app: OpenAPIHono<any>, deps: () => ReindexDeps): void {
  const admin = (c: { get(k: 'key'): ApiKeyEntry | undefined }) => requireScope(c.get('key')!, 'admin');
  app.post('/v1/reindex', async (c) => {
    admin(c as never);
    let body: { model?: unknown; batchSize?: unknown };
    try {
      body = await c.req.json();
    } catch {
      throw new ApiError(400, 'invalid_json', 'request body is not valid JSON');
    }
    if (typeof body.model !== 'string' || !body.model) throw new ApiError(422, 'validation_error', 'model: expected a model id', 'model');
    if (body.batchSize !== undefined && (!Number.isInteger(body.batchSize) || (body.batchSize as number) < 1 || (body.batchSize as number) > 256)) {
      throw new ApiError(422, 'validation_error', 'batchSize: expected an integer 1..256', 'batchSize');
    }
    const d = deps();
    assertIndexWritable(d.index); // the edge's read-only memory snapshot: 409 before a plan is written
    await d.registry.scan();
    if (!d.registry.has(body.model)) throw new ApiError(404, 'not_found', `unknown model ${body.model}`, 'model');
    if (body.model === d.service.active.id) throw new ApiError(409, 'already_active', `model ${body.model} is already active`, 'model');
    // a model of a dimension the index has no room for (Pinecone: no index mapped to it): 409 before anything is dropped
    await d.service.checkIndexDimension({ id: body.model, tag: d.registry.info(body.model)!.tag, encoder: await d.registry.get(body.model) });
    const plan = await planReindex(d, body.model, body.batchSize ? { batchSize: body.batchSize as number } : {});
    return c.json({ plan }, 202);
  });
  app.get('/v1/reindex/:runId', async (c) => {
    admin(c as never);
    const runId = c.req.param('runId');
    if (!RUN_ID.test(runId)) throw new ApiError(404, 'not_found', 'no such re-index run', 'runId');
    const status = await reindexStatus(deps(), runId);
    if (!status) throw new ApiError(404, 'not_found', 'no such re-index run', 'runId');
    return c.json({ status }, 200);
  });
  app.post('/v1/reindex/:runId/activate', async (c) => {
    admin(c as never);
    const runId = c.req.param('runId');
    if (!RUN_ID.test(runId)) throw new ApiError(404, 'not_found', 'no such re-index run', 'runId');
    const d = deps();
    try {
      const status = await activateReindexed(d, runId);
      return c.json({ status, active: d.service.active.id }, 200);
    } catch (e) {
      if (/no re-index run/.test((e as Error).message)) throw new ApiError(404, 'not_found', (e as Error).message, 'runId');
      throw new ApiError(409, 'reindex_incomplete', (e as Error).message);
    }
  });
}
