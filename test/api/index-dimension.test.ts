/**
 * The index dimension follows the model, and a Pinecone index of another dimension is refused up front: at server
 * start (the active model) and when a blue/green activation is asked for, by reading describe_index_stats'
 * dimension before any upsert, never by an upsert failing halfway through a re-embedding.
 * Pinecone here is the local stand-in test/index/pinecone-emulator.ts (no live Pinecone is reachable): it holds one
 * dimension per index and rejects upserts of another, as the service does.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { readManifest } from '../../src/model/artifact.js';
import { buildTinyCheckpoint } from '../reference/build-checkpoints.js';
import { PineconeEmulator } from '../index/pinecone-emulator.js';
import { PineconeControlEmulator } from '../index/pinecone-control-emulator.js';
import { loadConfig } from '../../src/config.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp } from './helpers.js';

let root: string;
let models: string;
let manyfold: { id: string; dim: number };
let clip: { id: string; dim: number };

beforeAll(async () => {
  root = tmp('dim');
  // one registry directory: a-... (Manyfold tiny, the default) and b-clip (an imported CLIP of another dimension)
  models = join(root, 'models');
  const [m] = await makeModels(join(root, 'tmp-m'), [5]);
  const { cp } = await import('node:fs/promises');
  await cp(m.dir, join(models, 'a-manyfold'), { recursive: true });
  manyfold = { id: m.id, dim: (await readManifest(m.dir)).config.embedDim };
  const ckpt = await buildTinyCheckpoint(join(root, 'ckpt'), 'openclip-f32-gelu');
  const r = await importClipCheckpoint({ from: ckpt.dir, out: join(models, 'b-clip'), log: () => undefined });
  clip = { id: r.manifest.id, dim: r.manifest.config.embedDim };
  expect(clip.dim).not.toBe(manyfold.dim);
});
afterAll(() => rmrf(root));

const pinecone = (emu: PineconeEmulator, host: string) => ({ index: { kind: 'pinecone', pinecone: { apiKey: emu.apiKey, host } } });
const upserts = (emu: PineconeEmulator) => emu.requests.filter((r) => r.path === '/vectors/upsert');

describe('index dimension vs the model (Pinecone: local emulator test/index/pinecone-emulator.ts, not the live service)', () => {
  it('server start with a Pinecone index of another dimension fails with a clear error, before any upsert', async () => {
    const emu = new PineconeEmulator({ dimension: manyfold.dim + 1 });
    const host = await emu.start();
    try {
      await expect(start({ modelDir: join(models, 'a-manyfold'), dataDir: join(root, 'data-start'), overrides: pinecone(emu, host) })).rejects.toThrow(
        new RegExp(`embeds into ${manyfold.dim} dimensions but the Pinecone index holds ${manyfold.dim + 1}-dimensional vectors: create a Pinecone index of dimension ${manyfold.dim}`),
      );
      expect(emu.requests.some((r) => r.path === '/describe_index_stats')).toBe(true);
      expect(upserts(emu)).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('activating a model of another dimension on the Pinecone index: 409 at once, nothing dropped or written; the active model keeps serving', async () => {
    const emu = new PineconeEmulator({ dimension: manyfold.dim });
    const host = await emu.start();
    const srv = await start({ modelDir: models, dataDir: join(root, 'data-act'), overrides: pinecone(emu, host) });
    try {
      const call = client(srv.url);
      expect(srv.api.service.active.id).toBe(manyfold.id);
      const img = (await png(20, 14, [200, 30, 30])).toString('base64');
      expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items: [{ id: 'x', image: img, captions: [CAPTIONS[0]] }] } })).status).toBe(200);
      emu.clearRequests();
      const r = await call('POST', `/v1/models/${clip.id}/activate`, { key: KEYS.admin });
      expect(r.status, r.text).toBe(409);
      expect(r.body.error.code).toBe('index_dimension_mismatch');
      expect(r.body.error.message).toContain(`model ${clip.id} embeds into ${clip.dim} dimensions but the Pinecone index holds ${manyfold.dim}-dimensional vectors`);
      expect(emu.requests.map((q) => q.path)).toEqual(['/describe_index_stats']); // read only: no delete, no upsert
      expect(srv.api.activation.running).toBeUndefined();
      const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'texts', topK: 1 } });
      expect(s.body).toMatchObject({ model: manyfold.id, results: [{ id: 'x' }] });
    } finally {
      await srv.close();
      await emu.stop();
    }
  });

  it('the index dimension follows the model: the CLIP model serves on a Pinecone index of its own dimension, and on LanceDB', async () => {
    const emu = new PineconeEmulator({ dimension: clip.dim });
    const host = await emu.start();
    for (const overrides of [pinecone(emu, host), {}]) {
      const srv = await start({ modelDir: join(models, 'b-clip'), dataDir: join(root, `data-clip-${Object.keys(overrides).length}`), overrides });
      try {
        const call = client(srv.url);
        const img = (await png(30, 20, [30, 200, 30])).toString('base64');
        expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items: [{ id: 'y', image: img, captions: [CAPTIONS[1]] }] } })).status).toBe(200);
        const s = await call('POST', '/v1/search', { key: KEYS.search, json: { image: img, topK: 1, target: 'images' } });
        expect(s.body.results[0].id).toBe('y');
        const { dimension } = await srv.index.stats(`default--${srv.api.service.active.tag}--img`);
        expect(dimension).toBe(clip.dim);
      } finally {
        await srv.close();
      }
    }
    expect(upserts(emu).length).toBeGreaterThan(0);
    await emu.stop();
  });
});

/** index.pinecone.indexes: one Pinecone index per dimension, each a local data-plane emulator, names resolved by a local describe_index stand-in */
describe('one Pinecone index per dimension (local emulators + local describe_index stand-in, not the live service)', () => {
  const routed = (control: string, indexes: Record<string, string>) => ({
    index: { kind: 'pinecone', pinecone: { apiKey: 'test-key', controllerHost: control, indexes, consistencyTimeoutMs: 0 } },
  });
  const writes = (emu: PineconeEmulator) => emu.requests.filter((r) => r.path === '/vectors/upsert' || r.path === '/vectors/delete');

  it('each model writes to the index of its dimension: ingest on the 1st, blue/green activation of the CLIP model fills the 2nd and search moves there', async () => {
    const small = new PineconeEmulator({ dimension: manyfold.dim });
    const wide = new PineconeEmulator({ dimension: clip.dim });
    const control = new PineconeControlEmulator();
    control.register('mf-small', { host: await small.start(), dimension: manyfold.dim });
    control.register('mf-clip', { host: await wide.start(), dimension: clip.dim });
    const srv = await start({ modelDir: models, dataDir: join(root, 'data-routed'), overrides: routed(await control.start(), { [manyfold.dim]: 'mf-small', [clip.dim]: 'mf-clip' }) });
    try {
      const call = client(srv.url);
      const img = (await png(20, 14, [200, 30, 30])).toString('base64');
      expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items: [{ id: 'x', image: img, captions: [CAPTIONS[0]] }] } })).status).toBe(200);
      const tagOf = (id: string) => srv.api.service.registry.info(id)!.tag;
      expect(small.count(`default--${tagOf(manyfold.id)}--img`)).toBe(1);
      expect(upserts(wide)).toEqual([]);
      const act = await call('POST', `/v1/models/${clip.id}/activate`, { key: KEYS.admin });
      expect(act.status, act.text).toBe(202);
      await srv.api.activation.settle();
      const job = await call('GET', `/v1/jobs/${act.body.job.id}`, { key: KEYS.admin });
      expect(job.body.job?.status ?? job.body.status, job.text).toBe('succeeded');
      expect(wide.count(`default--${tagOf(clip.id)}--img`)).toBe(1);
      expect(wide.count(`default--${tagOf(clip.id)}--txt`)).toBe(1);
      expect(small.count(`default--${tagOf(clip.id)}--img`)).toBe(0);
      const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'texts', topK: 1 } });
      expect(s.body).toMatchObject({ model: clip.id, results: [{ id: 'x' }] });
      expect(control.requests).toEqual(expect.arrayContaining(['GET /indexes/mf-small', 'GET /indexes/mf-clip']));
    } finally {
      await srv.close();
      await Promise.all([small.stop(), wide.stop(), control.stop()]);
    }
  });

  it("activating a model whose dimension has no index: 409 naming the missing indexes entry, nothing dropped or written", async () => {
    const small = new PineconeEmulator({ dimension: manyfold.dim });
    const control = new PineconeControlEmulator();
    control.register('mf-small', { host: await small.start(), dimension: manyfold.dim });
    const srv = await start({ modelDir: models, dataDir: join(root, 'data-routed-missing'), overrides: routed(await control.start(), { [manyfold.dim]: 'mf-small' }) });
    try {
      const call = client(srv.url);
      const img = (await png(20, 14, [30, 30, 200])).toString('base64');
      expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items: [{ id: 'z', image: img, captions: [CAPTIONS[2]] }] } })).status).toBe(200);
      small.clearRequests();
      const r = await call('POST', `/v1/models/${clip.id}/activate`, { key: KEYS.admin });
      expect(r.status, r.text).toBe(409);
      expect(r.body.error.code).toBe('index_dimension_mismatch');
      expect(r.body.error.message).toContain(`model ${clip.id}: no Pinecone index for ${clip.dim}-dimensional embeddings (index.pinecone.indexes maps ${manyfold.dim}: mf-small)`);
      expect(r.body.error.message).toContain(`add it as index.pinecone.indexes["${clip.dim}"]`);
      expect(writes(small)).toEqual([]);
      expect(srv.api.activation.running).toBeUndefined();
    } finally {
      await srv.close();
      await Promise.all([small.stop(), control.stop()]);
    }
  });

  it('an index whose describe_index dimension differs from its key: the server refuses to start, before any upsert', async () => {
    const small = new PineconeEmulator({ dimension: manyfold.dim + 1 });
    const control = new PineconeControlEmulator();
    control.register('mf-small', { host: await small.start(), dimension: manyfold.dim + 1 });
    try {
      await expect(start({ modelDir: join(models, 'a-manyfold'), dataDir: join(root, 'data-routed-wrong'), overrides: routed(await control.start(), { [manyfold.dim]: 'mf-small' }) })).rejects.toThrow(
        `Pinecone index "mf-small" (index.pinecone.indexes["${manyfold.dim}"]) holds ${manyfold.dim + 1}-dimensional vectors, not ${manyfold.dim}`,
      );
      expect(control.requests).toContain('GET /indexes/mf-small');
      expect(writes(small)).toEqual([]);
    } finally {
      await Promise.all([small.stop(), control.stop()]);
    }
  });

  it('configuration: bad dimension keys, bad index names and a section with neither host nor indexes name the field', () => {
    const bad = (pinecone: Record<string, unknown>) => () => loadConfig({ env: {}, overrides: { index: { kind: 'pinecone', pinecone: { apiKey: 'k', ...pinecone } } } });
    expect(bad({ indexes: { abc: 'mf-small' } })).toThrow(/index\.pinecone\.indexes\.abc: keys are embedding dimensions/);
    expect(bad({ indexes: { 64: 'Not_A_Name' } })).toThrow(/index\.pinecone\.indexes\.64: a Pinecone index name/);
    expect(bad({})).toThrow(/index\.pinecone\.host: required unless indexes maps at least one dimension/);
    expect(loadConfig({ env: {}, overrides: { index: { kind: 'pinecone', pinecone: { apiKey: 'k', indexes: { 64: 'mf-64', 512: 'mf-512' } } } } }).index.pinecone?.indexes).toEqual({ 64: 'mf-64', 512: 'mf-512' });
  });

  it('index.pinecone.indexes from MANYFOLD_CONFIG joins the PINECONE_API_KEY secret (deep merge, not replaced)', () => {
    const config = loadConfig({ env: {
      MANYFOLD_CONFIG: JSON.stringify({ index: { pinecone: { indexes: { 64: 'mf-64' }, consistencyTimeoutMs: 5000 } } }),
      MANYFOLD_INDEX: 'pinecone',
      PINECONE_API_KEY: 'secret-key',
    } });
    expect(config.index).toMatchObject({ kind: 'pinecone', pinecone: { apiKey: 'secret-key', indexes: { 64: 'mf-64' }, consistencyTimeoutMs: 5000 } });
    expect(config.index.pinecone?.host).toBeUndefined();
  });
});
