/** POST /v1/search: by text or image (JSON or multipart), images or texts as targets. */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import type { RouteContext } from './context.js';
import type { CheckedImage } from '../images.js';
import type { Target } from '../service.js';

export function registerSearchRoutes(ctx: RouteContext): void {
  const { app, S, service, needs, scope, security, errResponses, ns, image, fileImage, jsonField, parseWith } = ctx;
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
      const results = await service.search(namespace, q.text !== undefined ? { text: q.text } : { image: q.image!, field: 'image' }, target, q.topK, q.filter, model);
      return c.json({ results, model: model.id, namespace, target, tookMs: Math.round((performance.now() - t0) * 1000) / 1000 }, 200);
    },
  );
}
