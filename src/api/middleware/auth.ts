/** Bearer key (401 / 403 in auth.ts), then the key's rate limit (429 with Retry-After). */
import type { MiddlewareHandler } from 'hono';
import type { ManyfoldConfig } from '../../config.js';
import type { KeyRing } from '../auth.js';
import { ApiError } from '../errors.js';
import type { ApiMetrics } from '../metrics.js';
import type { RateLimiter } from '../rateLimit.js';
import type { Env } from '../routes/context.js';

export function authenticated(keyring: KeyRing, limiter: RateLimiter, metrics: ApiMetrics, limits: ManyfoldConfig['limits']): MiddlewareHandler<Env> {
  return async (c, next) => {
    const key = keyring.authenticate(c.req.header('authorization'));
    c.set('key', key);
    const wait = limiter.take(key.id);
    if (wait > 0) {
      metrics.rateLimited.inc();
      throw new ApiError(429, 'rate_limited', `rate limit of ${limits.ratePerSecond} requests/s (burst ${limits.rateBurst}) exceeded`, undefined, { 'Retry-After': String(wait) });
    }
    await next();
  };
}
