/**
 * With a distributed runner an activation may finish in another isolate / container (a queue consumer), which
 * switches state.active in the store; the others follow it at their next request, reading the state at most every
 * ACTIVE_SYNC_MS (one store read; a switch is then seen within that many ms).
 */
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { ActivationManager } from '../activation.js';
import type { BackgroundRunner } from '../background.js';
import type { ModelRegistry } from '../registry.js';
import type { Env } from '../routes/context.js';
import type { RetrievalService } from '../service.js';
import type { Store } from '../store.js';

const ACTIVE_SYNC_MS = 2000;

export function followActiveModel(o: { background: BackgroundRunner; store: Store; service: RetrievalService; registry: ModelRegistry; activation: ActivationManager; logger: Logger }): MiddlewareHandler<Env> {
  let checkedAt = Date.now();
  return async (_c, next) => {
    if (o.background.distributed && Date.now() - checkedAt >= ACTIVE_SYNC_MS) {
      checkedAt = Date.now();
      const st = await o.store.getState();
      if (st.active && st.active !== o.service.active.id && !o.activation.running) {
        if (!o.registry.has(st.active)) await o.registry.scan();
        if (o.registry.has(st.active)) {
          const from = o.service.active.id;
          await o.service.activate(st.active);
          o.logger.info({ model: st.active, from }, 'switched to the model another instance activated');
        } else o.logger.warn({ stateActive: st.active }, 'the active model in the store is not available here: still serving the previous one');
      }
    }
    await next();
  };
}
