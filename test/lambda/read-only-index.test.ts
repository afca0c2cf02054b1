/**
 * On AWS Lambda (functions/lambda.ts bootLambda, as a container boots it; the app reached through its Hono fetch,
 * no AWS call) the memory index is read-only like on the Worker: each container would hold its own copy. Ingest,
 * activation and re-index answer 409 index_read_only naming Pinecone, before anything reaches the store; search
 * keeps answering. (Writes through Pinecone on Lambda: test/lambda/lambda.test.ts.)
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_SPEC, KEYS, makeModels, rmrf, tmp } from '../api/helpers.js';

let root: string;
let boot: Awaited<ReturnType<typeof import('../../functions/lambda.js').bootLambda>>;
let candidate: string;

beforeAll(async () => {
  root = tmp('lambda-ro');
  const models = await makeModels(join(root, 'models'), [5, 6]);
  candidate = models[1].id;
  const { bootLambda } = await import('../../functions/lambda.js');
  boot = await bootLambda({
    MANYFOLD_MODEL_DIRS: models.map((m) => m.dir).join(','),
    MANYFOLD_DATA_DIR: join(root, 'data'),
    MANYFOLD_API_KEYS: KEY_SPEC,
    MANYFOLD_INDEX: 'memory',
    MANYFOLD_BACKEND: 'wasm',
    MANYFOLD_LOG_LEVEL: 'silent',
  });
});
afterAll(async () => {
  await boot?.edge.api.close();
  rmrf(root);
});

async function call(method: string, path: string, key: string, json?: unknown): Promise<{ status: number; body: any }> {
  const r = await boot.edge.api.app.fetch(
    new Request(`https://lambda.local${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) }),
  );
  return { status: r.status, body: await r.json() };
}

describe('Lambda with MANYFOLD_INDEX=memory: a read-only index', () => {
  it('ingest, activation and re-index answer 409 naming Pinecone; nothing is stored; search still answers', async () => {
    expect(boot.edge.index.kind).toBe('memory');
    const refused = [
      await call('POST', '/v1/items', KEYS.write, { items: [{ id: 'a', captions: ['a red square'] }] }),
      await call('POST', `/v1/models/${candidate}/activate`, KEYS.admin),
      await call('POST', '/v1/reindex', KEYS.admin, { model: candidate }),
    ];
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(409);
      expect(r.body.error).toMatchObject({ code: 'index_read_only', field: 'index.kind' });
      expect(r.body.error.message).toContain('MANYFOLD_INDEX=pinecone with PINECONE_API_KEY and PINECONE_HOST');
    }
    const data = join(root, 'data');
    for (const dir of ['items', 'blobs', 'jobs', 'reindex']) expect(existsSync(join(data, dir)) ? readdirSync(join(data, dir)) : [], dir).toEqual([]);
    const s = await call('POST', '/v1/search', KEYS.search, { text: 'a red square', target: 'texts', topK: 1 });
    expect(s.status).toBe(200);
    expect(s.body.results).toEqual([]);
  });
});
