/** Operational routes outside /v1: liveness, readiness (the index answers), Prometheus metrics. */
import { requireScope } from '../auth.js';
import type { RouteContext } from './context.js';

export function registerOpsRoutes(ctx: RouteContext): void {
  const { app, config, index, service, activation, keyring, metrics, fail } = ctx;
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => {
    try {
      await index.stats(`${config.server.defaultNamespace}--${service.active.tag}--img`);
      return c.json({ ready: true, model: service.active.id, index: index.kind, activation: activation.running?.id ?? null });
    } catch {
      return fail(c, 503, 'not_ready', 'the vector index is not answering');
    }
  });
  app.get('/metrics', async (c) => {
    if (!config.server.metricsPublic) {
      const key = keyring.authenticate(c.req.header('authorization'));
      requireScope(key, 'admin');
    }
    return c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType });
  });
}
