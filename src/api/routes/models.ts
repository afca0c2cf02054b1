/** Models: the registry, blue/green activation and its jobs. */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import type { RouteContext } from './context.js';
import { waitUntilOf } from '../background.js';
import { IdParam } from './context.js';

export function registerModelRoutes(ctx: RouteContext): void {
  const { app, S, service, store, registry, activation, needs, scope, security, errResponses } = ctx;
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
}
