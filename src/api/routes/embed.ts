/** POST /v1/embed: texts and images embedded by the active model. */
import { createRoute, z } from '@hono/zod-openapi';
import { ApiError } from '../errors.js';
import type { RouteContext } from './context.js';

export function registerEmbedRoutes(ctx: RouteContext): void {
  const { app, S, service, needs, scope, security, errResponses, image } = ctx;
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
}
