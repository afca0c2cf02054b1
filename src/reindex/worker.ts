/**
 * Cloudflare Queues adapter of the re-index consumer: the Worker's `queue()` handler. Messages of the main
 * queue are processed concurrently (their embeddings share encoder forward passes); each is acked on success
 * and retried on failure (wrangler `max_retries`, then the dead-letter queue). Messages arriving from the
 * dead-letter queue (its name ends in "-dlq") are recorded as dead batches, which marks the run failed.
 */
import { processMessage, recordDead, type ReindexDeps, type ReindexMessage } from './pipeline.js';

export type { ReindexDeps } from './pipeline.js';

export interface QueueMessageLike {
  id: string;
  body: unknown;
  attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

export interface QueueBatchLike {
  queue: string;
  messages: readonly QueueMessageLike[];
}

export async function processQueueBatch(batch: QueueBatchLike, deps: ReindexDeps): Promise<{ acked: number; retried: number; dead: number }> {
  const r = { acked: 0, retried: 0, dead: 0 };
  if (batch.queue.endsWith('-dlq')) {
    for (const m of batch.messages) {
      await recordDead(deps.progress, m.body as ReindexMessage, `exhausted retries after ${m.attempts} attempts`);
      m.ack();
      r.dead++;
    }
    return r;
  }
  await Promise.all(
    batch.messages.map(async (m) => {
      try {
        await processMessage(deps, m.body as ReindexMessage);
        m.ack();
        r.acked++;
      } catch (e) {
        console.error(JSON.stringify({ level: 50, msg: 're-index batch failed; will retry', id: m.id, attempts: m.attempts, err: (e as Error).message }));
        m.retry({ delaySeconds: Math.min(60, 2 ** Math.max(0, m.attempts - 1)) });
        r.retried++;
      }
    }),
  );
  return r;
}
