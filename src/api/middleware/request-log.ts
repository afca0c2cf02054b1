/** Request id (a valid incoming X-Request-Id, else a new one), echoed back, then one access-log line and metrics per request. */
import type { MiddlewareHandler } from 'hono';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApiMetrics } from '../metrics.js';
import type { Env } from '../routes/context.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function requestLog(logger: Logger, metrics: ApiMetrics): MiddlewareHandler<Env> {
  return async (c, next) => {
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
  };
}
