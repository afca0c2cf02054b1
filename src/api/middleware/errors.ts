/**
 * Every failure becomes the one error body of errors.ts: ApiError as thrown, index errors by code (a write to a
 * read-only snapshot 409, a failing backend 503, a bad filter 422), Hono's HTTP errors (413 body, 400 JSON), and
 * anything else a 500 that names the request id to quote.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from 'pino';
import { isIndexError } from '../../index/errors.js';
import { ApiError, type ErrorStatus } from '../errors.js';
import type { Env, Fail } from '../routes/context.js';

export function installErrorHandling(app: OpenAPIHono<Env>, fail: Fail, logger: Logger, maxBodyBytes: number): void {
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
      if (err.status === 413) return fail(c, 413, 'body_too_large', `request body exceeds ${maxBodyBytes} bytes`);
      if (err.status === 400) return fail(c, 400, 'invalid_json', /json/i.test(err.message) ? 'request body is not valid JSON' : err.message || 'bad request');
      return fail(c, err.status as ErrorStatus, 'http_error', err.message || 'request failed');
    }
    logger.error({ reqId: c.get('requestId'), err: (err as Error).message, stack: (err as Error).stack }, 'unhandled error');
    return fail(c, 500, 'internal', 'internal error; quote the request id when reporting it');
  });
  app.notFound((c) => fail(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`));
}
