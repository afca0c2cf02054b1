/**
 * The dashboard: one static page (index.html + app.css + app.js, plain ES module, no build step, no CDN) served
 * at GET /dashboard. The page itself is public (it holds no data); it asks for an API key (kept in
 * sessionStorage) and calls the JSON API with `Authorization: Bearer`, like any other client.
 *
 * It also adds one small API route the page needs for thumbnails:
 *   GET /v1/items/{id}/image?namespace=   the item's stored image bytes (scope: search)
 * served from the content-addressed blob store, with an ETag (the sha256) and a strict CSP / nosniff so the
 * bytes are only ever treated as an image.
 *
 * Mount with `mountDashboard(app, { store, defaultNamespace })` after the /v1/* auth middleware is registered.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Env, MiddlewareHandler } from 'hono';
import { readFile } from 'node:fs/promises';
import { requireScope, type ApiKeyEntry } from '../auth.js';
import { ApiError } from '../errors.js';
import { ErrorSchema, USER_NAMESPACE } from '../schemas.js';
import type { Store } from '../store.js';

export interface DashboardOptions {
  store: Store;
  defaultNamespace: string;
}

type KeyEnv = Env & { Variables: { key?: ApiKeyEntry } };

/** browsers render these; anything else (tiff, …) is sent as opaque bytes */
const IMAGE_TYPES: Record<string, string> = { png: 'image/png', jpeg: 'image/jpeg', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif' };

const ASSETS = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;
type AssetName = keyof typeof ASSETS;

/**
 * Same-origin only: the page's script, style and API calls; thumbnails are blob: URLs made from authenticated
 * fetches; the probe report (the API's own HTML, no scripts) is shown in a sandboxed srcdoc iframe, which
 * inherits this policy (hence the inline styles it needs).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "frame-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const cache = new Map<AssetName, Promise<string>>();
/**
 * The page's files, read once from beside this module. A bundled deployment without them (an edge Worker
 * bundle carries no sibling files) answers 404 for /dashboard instead of a 500; the JSON API is unaffected.
 */
function asset(name: AssetName): Promise<string> {
  let p = cache.get(name);
  if (!p) {
    p = (async () => {
      try {
        return await readFile(new URL(`./${name}`, import.meta.url), 'utf8');
      } catch {
        cache.delete(name);
        throw new ApiError(404, 'not_found', 'the dashboard is not bundled with this deployment (use the Node server)');
      }
    })();
    cache.set(name, p);
  }
  return p;
}

export function mountDashboard<E extends KeyEnv>(app: OpenAPIHono<E>, opts: DashboardOptions): void {
  const { store } = opts;
  const headers = (name: AssetName): Record<string, string> => ({
    'Content-Type': ASSETS[name],
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    ...(name === 'index.html' ? { 'Content-Security-Policy': DASHBOARD_CSP, 'X-Frame-Options': 'DENY' } : {}),
  });

  app.get('/dashboard', async (c) => c.body(await asset('index.html'), 200, headers('index.html')));
  app.get('/dashboard/', (c) => c.redirect('../dashboard', 301));
  app.get('/dashboard/app.js', async (c) => c.body(await asset('app.js'), 200, headers('app.js')));
  app.get('/dashboard/app.css', async (c) => c.body(await asset('app.css'), 200, headers('app.css')));

  const needsSearch: MiddlewareHandler<E> = async (c, next) => {
    requireScope(c.get('key')!, 'search');
    await next();
  };
  const errors = Object.fromEntries(([401, 403, 404, 422, 429] as const).map((s) => [s, { content: { 'application/json': { schema: ErrorSchema } }, description: 'error' }]));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/items/{id}/image',
      tags: ['items'],
      summary: "An item's stored image bytes, for thumbnails (scope: search)",
      description: 'The original bytes as uploaded (Content-Type from the stored format). ETag = the sha256 of the bytes; If-None-Match answers 304.',
      security: [{ bearer: [] as string[] }],
      middleware: [needsSearch],
      request: {
        params: z.object({ id: z.string().min(1).max(256).openapi({ param: { name: 'id', in: 'path' } }) }),
        query: z.object({ namespace: z.string().regex(USER_NAMESPACE, 'namespace: 1-32 characters from [A-Za-z0-9_.], starting with a letter or digit').optional() }),
      },
      responses: {
        200: { content: { 'image/*': { schema: z.string().openapi({ format: 'binary' }) } }, description: 'the image bytes' },
        304: { description: 'not modified (If-None-Match matched the ETag)' },
        ...errors,
      },
    }),
    async (c) => {
      requireScope(c.get('key')!, 'search');
      const { id } = c.req.valid('param');
      const namespace = c.req.valid('query').namespace ?? opts.defaultNamespace;
      const item = await store.getItem(namespace, id);
      if (!item) throw new ApiError(404, 'not_found', `no item ${JSON.stringify(id)}`, 'id');
      if (!item.image) throw new ApiError(404, 'not_found', `item ${JSON.stringify(id)} has no image`, 'id');
      const etag = `"${item.image.sha256}"`;
      const common = {
        ETag: etag,
        'Cache-Control': 'private, no-cache',
        'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': "default-src 'none'; sandbox",
      };
      if ((c.req.header('if-none-match') ?? '').split(',').some((t) => t.trim() === etag)) return c.body(null, 304, common);
      let bytes: Buffer;
      try {
        bytes = await store.getBlob(item.image.sha256);
      } catch {
        throw new ApiError(404, 'not_found', `the image bytes of item ${JSON.stringify(id)} are missing`, 'id');
      }
      return c.body(new Uint8Array(bytes), 200, { ...common, 'Content-Type': IMAGE_TYPES[item.image.format] ?? 'application/octet-stream' });
    },
  );
}
