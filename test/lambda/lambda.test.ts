/**
 * The Lambda handler tested locally with synthetic function-URL events (payload v2.0), a tiny model read from
 * MANYFOLD_MODEL_DIRS and the store in a temp directory (no AWS call); plus the SQS re-index consumer with
 * synthetic SQS events (success, redelivery = idempotent, failure -> batchItemFailures, DLQ record).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_SPEC, KEYS, makeModels, rmrf, tmp } from '../api/helpers.js';

let root: string;
let models: { dir: string; id: string }[];
let lambda: typeof import('../../functions/lambda.js');

function urlEvent(method: string, path: string, opts: { key?: string; json?: unknown; query?: string } = {}) {
  const headers: Record<string, string> = { host: 'abc123.lambda-url.eu-west-1.on.aws', 'user-agent': 'vitest', 'x-forwarded-proto': 'https' };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: opts.query ?? '',
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc123',
      domainName: 'abc123.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
    isBase64Encoded: false,
  };
}

async function call(method: string, path: string, opts: { key?: string; json?: unknown } = {}): Promise<{ status: number; body: any; headers: Record<string, string> }> {
  const r = await lambda.handler(urlEvent(method, path, opts), {});
  return { status: r.statusCode, body: r.body ? JSON.parse(r.isBase64Encoded ? Buffer.from(r.body, 'base64').toString() : r.body) : undefined, headers: r.headers };
}

beforeAll(async () => {
  root = tmp('lambda');
  models = await makeModels(`${root}/models`, [3, 4]);
  process.env.MANYFOLD_MODEL_DIRS = models.map((m) => m.dir).join(',');
  process.env.MANYFOLD_DATA_DIR = `${root}/data`;
  process.env.MANYFOLD_API_KEYS = KEY_SPEC;
  process.env.MANYFOLD_INDEX = 'memory';
  process.env.MANYFOLD_BACKEND = 'wasm';
  process.env.MANYFOLD_LOG_LEVEL = 'silent';
  lambda = await import('../../functions/lambda.js');
});

afterAll(async () => {
  const b = await lambda?.boot().catch(() => undefined);
  await b?.edge.api.close();
  rmrf(root);
});

describe('AWS Lambda handler (function URL events)', () => {
  it('serves health, auth errors, ingest and search through the same app', async () => {
    const t0 = performance.now();
    const h = await call('GET', '/health');
    console.log(`[lambda] cold start (boot + first request) ${(performance.now() - t0).toFixed(0)} ms`);
    expect(h.status).toBe(200);
    expect(h.headers['x-request-id']).toBeTruthy();
    expect((await call('POST', '/v1/search', { json: { text: 'x' } })).status).toBe(401);
    expect((await call('POST', '/v1/items', { key: KEYS.search, json: { items: [{ id: 'a', captions: ['x'] }] } })).status).toBe(403);
    const w = await call('POST', '/v1/items', {
      key: KEYS.write,
      json: { items: [{ id: 'a', captions: ['a red circle next to a small blue square'], metadata: { n: 1 } }, { id: 'b', captions: ['two big brown dogs run across the green field'] }] },
    });
    expect(w.status).toBe(200);
    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'two big brown dogs run across the green field', target: 'texts', topK: 1 } });
    expect(s.status).toBe(200);
    expect(s.body.results[0].id).toBe('b');
    expect(s.body.model).toBe(models[0].id);
    const bad = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'x', bogus: true } });
    expect(bad.status).toBe(422);
  });

  it('re-index over SQS events: consumer idempotent on redelivery, failures reported per message, DLQ recorded', async () => {
    const { planReindex, reindexStatus } = await import('../../src/reindex/pipeline.js');
    const b = await lambda.boot();
    const sent: unknown[] = [];
    const plan = await planReindex({ ...b.deps(), enqueue: async (m) => void sent.push(...m) }, models[1].id, { batchSize: 1 });
    expect(sent).toHaveLength(2);
    const records = sent.map((m, i) => ({ messageId: `m${i}`, body: JSON.stringify(m) }));
    const r1 = await lambda.reindexConsumer({ Records: [...records, { messageId: 'poison', body: '{"nope":1}' }] });
    expect(r1.batchItemFailures).toEqual([{ itemIdentifier: 'poison' }]);
    // redelivery of the same batch (at-least-once): same records, same counts
    expect((await lambda.reindexConsumer({ Records: records })).batchItemFailures).toEqual([]);
    const st = await reindexStatus(b.deps(), plan.runId);
    expect(st!.state).toBe('complete');
    expect(st!.verification![0].actual).toEqual(st!.verification![0].expected);
    const act = await call('POST', `/v1/reindex/${plan.runId}/activate`, { key: KEYS.admin, json: {} });
    expect(act.status).toBe(200);
    expect(act.body.active).toBe(models[1].id);
    // a DLQ record marks a run failed
    await lambda.reindexDeadLetter({ Records: [{ messageId: 'd1', body: JSON.stringify({ ...(sent[0] as object), batch: 99 }) }] });
    expect((await reindexStatus(b.deps(), plan.runId))!.batches.dead).toBe(1);
  });
});
