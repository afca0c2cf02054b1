/**
 * Runs INSIDE workerd: functions/worker.ts discovers a published model from the catalogue of its MODELS R2 bucket
 * (Miniflare's local R2, the stand-in for R2), seeded here the way `manyfold publish` lays it out:
 * models/<id>/{manifest.json, tokenizer.json, weights-*.bin} and models/catalog.json written last. The model
 * exists only in R2 (its manifest carries an id no asset has), so serving it proves the Worker read it from there.
 */
import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';

const KEYS = { admin: 'admin-key-0123456789', search: 'search-key-0123456789' };
const R2_ONLY_ID = 'mf-r2only00001';

async function sha256(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as BufferSource))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function asset(path: string): Promise<Uint8Array> {
  const r = await env.ASSETS.fetch(new Request(`https://assets.local${path}`));
  if (!r.ok) throw new Error(`asset ${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** the candidate artifact of the fixture, re-labelled with an id of its own and published into R2 */
async function seedR2(): Promise<void> {
  const folders = JSON.parse(new TextDecoder().decode(await asset('/models.json'))) as string[];
  let folder: string | undefined;
  let manifest: any;
  for (const f of folders) {
    const m = JSON.parse(new TextDecoder().decode(await asset(`/${f}/manifest.json`)));
    if (m.id === env.TEST_CANDIDATE_ID) [folder, manifest] = [f, m];
  }
  if (!folder) throw new Error(`the fixture assets have no ${env.TEST_CANDIDATE_ID}`);
  for (const file of manifest.files as { path: string }[]) await env.MODELS.put(`models/${R2_ONLY_ID}/${file.path}`, await asset(`/${folder}/${file.path}`));
  const manifestBytes = new TextEncoder().encode(JSON.stringify({ ...manifest, id: R2_ONLY_ID }));
  await env.MODELS.put(`models/${R2_ONLY_ID}/manifest.json`, manifestBytes);
  const now = new Date().toISOString();
  const catalog = {
    format: 'manyfold-catalog/1',
    updated: now,
    default: R2_ONLY_ID,
    models: [
      {
        id: R2_ONLY_ID,
        manifest: { bytes: manifestBytes.length, sha256: await sha256(manifestBytes) },
        files: manifest.files.length,
        bytes: manifest.files.reduce((a: number, f: { bytes: number }) => a + f.bytes, 0),
        preset: manifest.config.preset,
        embedDim: manifest.config.embedDim,
        created: manifest.created,
        published: now,
      },
    ],
  };
  await env.MODELS.put('models/catalog.json', JSON.stringify(catalog));
}

describe('the Worker discovers models from the R2 catalogue (Miniflare local R2)', () => {
  it("serves the catalogue's default model, read and verified from R2, next to the bundled asset models", async () => {
    await seedR2(); // before the first request: the isolate boots on it
    const info = await SELF.fetch('https://manyfold.test/edge/info');
    expect(info.status).toBe(200);
    expect(((await info.json()) as { model: string }).model).toBe(R2_ONLY_ID);

    const list = await SELF.fetch('https://manyfold.test/v1/models', { headers: { authorization: `Bearer ${KEYS.admin}` } });
    const body = (await list.json()) as { active: string; models: { id: string }[] };
    expect(body.active).toBe(R2_ONLY_ID);
    expect(body.models.map((m) => m.id)).toEqual([R2_ONLY_ID, env.TEST_MODEL_ID, env.TEST_CANDIDATE_ID]);

    const s = await SELF.fetch('https://manyfold.test/v1/search', {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.search}`, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'a red circle', target: 'texts', topK: 1 }),
    });
    expect(s.status).toBe(200);
    expect(((await s.json()) as { model: string }).model).toBe(R2_ONLY_ID);
  });
});
