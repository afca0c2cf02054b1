/** The OpenAPI document generated from the routes' zod schemas, and its reference page. */
import { readFile } from 'node:fs/promises';
import { docsHtml, scalarScriptPath } from '../docs.js';
import type { RouteContext } from './context.js';

export function registerDocRoutes(ctx: RouteContext): void {
  const { app } = ctx;
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'an API key from MANYFOLD_API_KEYS' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Manyfold API', version: '1', description: 'Robust image–text retrieval: ingest, search, blue/green model activation, live attack probes. See docs/api.md.' },
  });
  app.get('/docs', (c) => c.html(docsHtml('/openapi.json', '/docs/scalar.js')));
  let scalarJs: Promise<string> | undefined;
  app.get('/docs/scalar.js', async (c) => {
    scalarJs ??= readFile(scalarScriptPath(), 'utf8');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(await scalarJs, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  });
}
