/** Attack probes of the live encoder and index: start, list, read (JSON or HTML), cancel or delete. */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import type { RouteContext } from './context.js';
import { waitUntilOf } from '../background.js';
import { USER_NAMESPACE } from '../schemas.js';
import { IdParam } from './context.js';

export function registerProbeRoutes(ctx: RouteContext): void {
  const { app, S, probes, needs, scope, security, errResponses, ns } = ctx;
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
}
