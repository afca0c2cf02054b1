/** Items: upsert (JSON or multipart), read and delete. */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import type { RouteContext } from './context.js';
import type { ItemInput } from '../service.js';
import { IdParam } from './context.js';

export function registerItemRoutes(ctx: RouteContext): void {
  const { app, S, service, store, needs, scope, security, errResponses, ns, image, fileImage, jsonField, parseWith } = ctx;
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
}
