/**
 * Bodies are JSON (multipart too for items and search): anything else is a 415 before the body is read. An
 * activation may come without a body.
 */
import type { MiddlewareHandler } from 'hono';
import { ApiError } from '../errors.js';
import type { Env } from '../routes/context.js';

export function bodyContentTypes(): MiddlewareHandler<Env> {
  return async (c, next) => {
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
}
