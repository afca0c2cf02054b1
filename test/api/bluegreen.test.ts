/**
 * Blue/green activation: re-embed into the new model's namespaces in the background, switch only after the
 * counts verify, keep the old namespaces, survive a restart mid-job (resume), roll back when the model is gone.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationJob } from '../../src/api/activation.js';
import type { RunningServer } from '../../src/node/server.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp, waitFor } from './helpers.js';

let root: string;
let models: { dir: string; id: string }[];

beforeAll(async () => {
  root = tmp('bg');
  models = await makeModels(`${root}/models`, [1, 2]);
  models.sort((a, b) => a.dir.localeCompare(b.dir)); // m1 is the registry default
});
afterAll(() => rmrf(root));

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

describe('blue/green activation', () => {
  it('re-embeds in the background, survives a restart mid-job, switches after verification, rolls back', async () => {
    const data = `${root}/data`;
    const paused = gate();
    let reached = false;
    let a: RunningServer | undefined = await start({
      modelDir: `${root}/models`,
      dataDir: data,
      hooks: {
        activation: {
          beforeChunk: async (job) => {
            if (job.progress.done >= 8) {
              reached = true;
              await paused.p;
            }
          },
        },
      },
    });
    const [m1, m2] = models;
    let call = client(a.url);
    expect(a.api.service.active.id).toBe(m1.id);
    const items = [];
    for (let i = 0; i < 20; i++) {
      items.push({ id: `it${i}`, image: (await png(16, 16, [(i * 37) % 255, (i * 91) % 255, (i * 13) % 255], i)).toString('base64'), captions: [CAPTIONS[i % 6], `${CAPTIONS[(i + 1) % 6]} ${i}`], metadata: { i } });
    }
    expect((await call('POST', '/v1/items', { key: KEYS.admin, json: { items } })).status).toBe(200);

    const act = await call('POST', `/v1/models/${m2.id}/activate`, { key: KEYS.admin });
    expect(act.status, act.text).toBe(202);
    const jobId = act.body.job.id as string;
    await waitFor(async () => reached);
    // mid-job: search still answers from the old model; a second activation is refused
    const mid = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0] } });
    expect(mid.body.model).toBe(m1.id);
    expect(mid.body.results).toHaveLength(10);
    expect((await call('POST', `/v1/models/${m2.id}/activate`, { key: KEYS.admin })).status).toBe(409);
    const running = await call('GET', `/v1/jobs/${jobId}`, { key: KEYS.admin });
    expect(running.body.job).toMatchObject({ status: 'running', model: m2.id, from: m1.id, progress: { done: 8, total: 20 } });
    // a write during the job goes to both models (dual write)
    expect((await call('POST', '/v1/items', { key: KEYS.admin, json: { items: [{ id: 'late', captions: ['a late caption written mid-job'] }] } })).status).toBe(200);

    // "crash": stop the server mid-job
    const closing = a.close();
    paused.open();
    await closing;
    a = undefined;

    // restart: the job resumes from its checkpoint and completes; then search switches
    const b = await start({ modelDir: `${root}/models`, dataDir: data });
    try {
      call = client(b.url);
      expect(b.api.service.active.id).toBe(m1.id); // never a half-built namespace
      const job = await waitFor(async () => {
        const j = (await call('GET', `/v1/jobs/${jobId}`, { key: KEYS.admin })).body.job as ActivationJob;
        return j.status !== 'running' ? j : undefined;
      });
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      expect(job.progress.done).toBe(job.progress.total);
      expect(job.progress.done).toBeGreaterThanOrEqual(20);
      expect(job.verification).toEqual([{ namespace: 'default', expected: { images: 20, texts: 41 }, actual: { images: 20, texts: 41 } }]);
      const after = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a late caption written mid-job', target: 'texts', topK: 1 } });
      expect(after.body.model).toBe(m2.id);
      expect(after.body.results[0]).toMatchObject({ id: 'late' });
      expect(after.body.results[0].score).toBeCloseTo(1, 4);
      const ms = await call('GET', '/v1/models', { key: KEYS.search });
      expect(ms.body.models.find((m: any) => m.id === m2.id)).toMatchObject({ active: true });
      expect(ms.body.models.find((m: any) => m.id === m1.id)).toMatchObject({ active: false, previous: true });
      // old namespaces are kept for rollback
      const nss = await b.index.listNamespaces();
      expect(nss).toEqual(expect.arrayContaining([`default--${m1.id}--img`, `default--${m1.id}--txt`, `default--${m2.id}--img`, `default--${m2.id}--txt`]));

      // rollback = activate the previous model
      const rb = await call('POST', `/v1/models/${m1.id}/activate`, { key: KEYS.admin });
      expect(rb.status).toBe(202);
      await b.api.activation.settle();
      const rbJob = (await call('GET', `/v1/jobs/${rb.body.job.id}`, { key: KEYS.admin })).body.job;
      expect(rbJob.status).toBe('succeeded');
      expect((await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'x' } })).body.model).toBe(m1.id);
      expect((await call('POST', `/v1/models/${m1.id}/activate`, { key: KEYS.admin })).status).toBe(409);
    } finally {
      await b.close();
    }
  });

  it('a job whose model disappeared during a restart is rolled back', async () => {
    const data = `${root}/data-rb`;
    const extra = await makeModels(`${root}/models-rb`, [5, 6]);
    extra.sort((x, y) => x.dir.localeCompare(y.dir));
    const paused = gate();
    let reached = false;
    const a = await start({ modelDir: `${root}/models-rb`, dataDir: data, hooks: { activation: { beforeChunk: async () => { reached = true; await paused.p; } } } });
    const call = client(a.url);
    await call('POST', '/v1/items', { key: KEYS.admin, json: { items: [{ id: 'x', captions: ['one caption'] }] } });
    const act = await call('POST', `/v1/models/${extra[1].id}/activate`, { key: KEYS.admin });
    await waitFor(async () => reached);
    const closing = a.close();
    paused.open();
    await closing;
    rmSync(extra[1].dir, { recursive: true, force: true });
    const b = await start({ modelDir: `${root}/models-rb`, dataDir: data });
    try {
      const job = (await client(b.url)('GET', `/v1/jobs/${act.body.job.id}`, { key: KEYS.admin })).body.job;
      expect(job.status).toBe('rolled-back');
      expect(b.api.service.active.id).toBe(extra[0].id);
      expect((await client(b.url)('POST', '/v1/search', { key: KEYS.search, json: { text: 'one caption', target: 'texts' } })).body.results[0].id).toBe('x');
    } finally {
      await b.close();
    }
  });
});
