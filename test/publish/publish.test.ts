/**
 * `manyfold publish` / publishArtifact against a real local S3 API server (s3rver, started here: the stand-in
 * for S3 and R2's S3 endpoint; it ignores conditional PUT headers, so the HEAD-then-PUT-then-verify path is the
 * one exercised): upload, verification, no overwrite, the catalogue, the errors users hit, and kill -9 of the CLI
 * mid-upload (started as a user would: node bin/manyfold.js publish ...).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { catalogKey, parseCatalog } from '../../src/edge/bucket-catalog.js';
import { S3Bucket, StorageError } from '../../src/aws/s3-bucket.js';
import { ArtifactError, readManifest, saveArtifact } from '../../src/model/artifact.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { DestinationError, parseDestination } from '../../src/publish/destination.js';
import { PublishConflictError, publishArtifact } from '../../src/publish/publish.js';
import { CAPTIONS, rmrf, tmp } from '../api/helpers.js';
import { S3RVER_ENV, startS3rver, type LocalS3 } from './s3rver.js';

const ROOT = resolve(import.meta.dirname, '../..');
let root: string;
let s3: LocalS3;
let bucket: S3Bucket;
/** tiny models: a in one shard, b and c in many small shards (so a kill can land between two of them) */
const models: Record<'a' | 'b' | 'c', { dir: string; id: string }> = {} as never;

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

async function catalogText(prefix: string): Promise<string | undefined> {
  const o = await bucket.get(catalogKey(prefix));
  return o ? o.text() : undefined;
}

beforeAll(async () => {
  Object.assign(process.env, S3RVER_ENV);
  root = tmp('publish');
  s3 = await startS3rver();
  bucket = new S3Bucket({ bucket: s3.bucket, endpoint: s3.endpoint });
  await initBackend('wasm');
  const tok = buildTokenizer(CAPTIONS, { maxLen: 32 });
  for (const [name, seed, shardBytes] of [['a', 1, undefined], ['b', 2, 256 * 1024], ['c', 3, 256 * 1024]] as const) {
    const model = createDualEncoder(modelConfigFromPreset('tiny', tok.vocabSize), seed);
    const dir = join(root, name);
    const m = await saveArtifact(dir, { model, tokenizer: tok, training: { seed, method: 'untrained (test)' }, ...(shardBytes ? { shardBytes } : {}) });
    model.dispose();
    models[name] = { dir, id: m.id };
  }
});

afterAll(async () => {
  await s3?.close();
  rmrf(root);
});

describe('publishArtifact (s3rver stand-in for S3 / R2)', () => {
  it('uploads every file under <prefix>/<id>/, verifies it, writes the catalogue last; a rerun changes nothing', async () => {
    const m = await readManifest(models.a.dir);
    s3.puts.length = 0;
    const r = await publishArtifact(models.a.dir, `s3://${s3.bucket}/models`, { endpoint: s3.endpoint });
    expect(r.id).toBe(models.a.id);
    expect(r.url).toBe(`s3://${s3.bucket}/models/${models.a.id}/`);
    expect(r.uploaded.objects).toBe(m.files.length + 1);
    // the catalogue is the last object written, after the manifest, after every file
    expect(s3.puts.at(-1)).toBe('models/catalog.json');
    expect(s3.puts.at(-2)).toBe(`models/${models.a.id}/manifest.json`);
    for (const f of m.files) expect(await bucket.hash(`models/${models.a.id}/${f.path}`)).toEqual({ bytes: f.bytes, sha256: f.sha256 });
    const catalog = parseCatalog((await catalogText('models'))!, 'catalog');
    expect(catalog.default).toBe(models.a.id);
    expect(catalog.models.map((e) => e.id)).toEqual([models.a.id]);
    expect(catalog.models[0].manifest.sha256).toBe(sha(readFileSync(join(models.a.dir, 'manifest.json'))));

    const before = await catalogText('models');
    const puts = s3.puts.length;
    const again = await publishArtifact(models.a.dir, `s3://${s3.bucket}/models`, { endpoint: s3.endpoint });
    expect(again.objects.every((o) => o.action === 'present')).toBe(true);
    expect(again.catalog.changed).toBe(false);
    expect(s3.puts.length).toBe(puts); // not one PUT
    expect(await catalogText('models')).toBe(before);
  });

  it('never overwrites: an object with other content under the key stops the publish, naming it; the catalogue is untouched', async () => {
    const prefix = 'conflict';
    await publishArtifact(models.a.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint });
    const before = await catalogText(prefix);
    const m = await readManifest(models.b.dir);
    const key = `${prefix}/${models.b.id}/${m.files[1].path}`;
    await bucket.put(key, 'not the shard');
    const err = await publishArtifact(models.b.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint, concurrency: 1 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PublishConflictError);
    expect((err as Error).message).toContain(`s3://${s3.bucket}/${key}`);
    expect((err as Error).message).toContain('refusing to overwrite');
    expect(await (await bucket.get(key))!.text()).toBe('not the shard');
    expect(await catalogText(prefix)).toBe(before);
    expect(await bucket.head(`${prefix}/${models.b.id}/manifest.json`)).toBeNull();
  });

  it('a second model joins the catalogue; the default stays unless --default', async () => {
    const prefix = 'two';
    await publishArtifact(models.a.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint });
    await publishArtifact(models.b.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint });
    let c = parseCatalog((await catalogText(prefix))!, 'catalog');
    expect(c.models.map((e) => e.id)).toEqual([models.a.id, models.b.id]);
    expect(c.default).toBe(models.a.id);
    const r = await publishArtifact(models.b.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint, makeDefault: true });
    expect(r.uploaded.objects).toBe(0);
    c = parseCatalog((await catalogText(prefix))!, 'catalog');
    expect(c.default).toBe(models.b.id);
    expect(c.models).toHaveLength(2);
  });

  it('clear errors: missing bucket, refused credentials, unreachable endpoint, bad destination, altered local file', async () => {
    const missing = await publishArtifact(models.a.dir, 's3://no-such-bucket/models', { endpoint: s3.endpoint }).catch((e: Error) => e);
    expect(missing).toBeInstanceOf(StorageError);
    expect((missing as StorageError).problem).toBe('no-bucket');
    expect((missing as Error).message).toContain('s3://no-such-bucket/');

    // s3rver checks the access key id (not the secret): an unknown key is refused like a wrong one on S3
    const keyId = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'NOT-A-KEY';
    try {
      const denied = await publishArtifact(models.a.dir, `s3://${s3.bucket}/models`, { endpoint: s3.endpoint }).catch((e: Error) => e);
      expect((denied as StorageError).problem).toBe('access-denied');
      expect((denied as Error).message).toContain(`s3://${s3.bucket}/: access denied`);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = keyId;
    }

    const down = await publishArtifact(models.a.dir, `s3://${s3.bucket}/models`, { endpoint: 'http://127.0.0.1:9' }).catch((e: Error) => e);
    expect((down as StorageError).problem).toBe('network');
    expect((down as Error).message).toMatch(/cannot reach the storage endpoint \(ECONNREFUSED\)/);

    expect(() => parseDestination('https://bucket/models')).toThrow(DestinationError);
    expect(() => parseDestination('s3://Bad_Bucket/models')).toThrow(/bucket name "Bad_Bucket"/);
    expect(() => parseDestination('s3://ok-bucket/a/../b')).toThrow(/prefix/);
    expect(parseDestination('s3://ok-bucket/a/b/')).toEqual({ bucket: 'ok-bucket', prefix: 'a/b' });

    // a local file that no longer matches its manifest is refused before anything is uploaded
    const bad = join(root, 'altered');
    cpSync(models.b.dir, bad, { recursive: true });
    const shard = (await readManifest(bad)).files.find((f) => f.path.startsWith('weights-'))!.path;
    const bytes = readFileSync(join(bad, shard));
    bytes[0] ^= 1;
    writeFileSync(join(bad, shard), bytes);
    const puts = s3.puts.length;
    const altered = await publishArtifact(bad, `s3://${s3.bucket}/altered`, { endpoint: s3.endpoint }).catch((e: Error) => e);
    expect(altered).toBeInstanceOf(ArtifactError);
    expect((altered as Error).message).toContain(`${shard} failed its sha256 check`);
    expect(s3.puts.length).toBe(puts);
  });
});

function runCli(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [join(ROOT, 'bin/manyfold.js'), ...args], { cwd: ROOT, env: { ...process.env, ...S3RVER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((res) => child.on('exit', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done };
}

describe('manyfold publish, killed with SIGKILL mid-upload (s3rver stand-in)', () => {
  it('leaves the catalogue byte for byte as it was; a rerun keeps the uploaded shard and completes', async () => {
    const prefix = 'killed';
    await publishArtifact(models.a.dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint });
    const before = await catalogText(prefix);
    const m = await readManifest(models.c.dir);
    expect(m.files.length).toBeGreaterThan(4);

    // hold the bucket as soon as the first shard of c has landed, then kill the CLI while it waits on the next request
    const shardKey = new RegExp(`^${prefix}/${models.c.id}/weights-\\d+\\.bin$`);
    let firstShard: string | undefined;
    s3.onPut = (key, status) => {
      if (!firstShard && status === 200 && shardKey.test(key)) {
        firstShard = key;
        s3.hold();
      }
    };
    const run = runCli(['publish', models.c.dir, '--to', `s3://${s3.bucket}/${prefix}`, '--endpoint', s3.endpoint]);
    const t0 = Date.now();
    while (s3.held() === 0 && run.child.exitCode === null && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    expect(s3.held()).toBeGreaterThan(0);
    run.child.kill('SIGKILL');
    const killed = await run.done;
    s3.onPut = undefined;
    s3.drop(); // the dead client's requests never reach the store (as with S3: no object from a broken upload)
    s3.open();
    expect(killed.signal).toBe('SIGKILL');
    expect(firstShard).toBeDefined();

    expect(await catalogText(prefix)).toBe(before);
    expect(await bucket.head(`${prefix}/${models.c.id}/manifest.json`)).toBeNull();
    expect(await bucket.head(firstShard!)).not.toBeNull();
    console.log(`[publish kill -9] killed after ${firstShard}; catalogue unchanged (${before!.length} bytes, lists ${parseCatalog(before!, 'c').models.length} model)`);

    const rerun = runCli(['publish', models.c.dir, '--to', `s3://${s3.bucket}/${prefix}`, '--endpoint', s3.endpoint]);
    const out = await rerun.done;
    expect(out.code, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout) as { objects: { key: string; action: string }[]; catalog: { changed: boolean; models: number } };
    expect(r.objects.find((o) => o.key === firstShard)!.action).toBe('present');
    expect(r.catalog).toMatchObject({ changed: true, models: 2 });
    const after = parseCatalog((await catalogText(prefix))!, 'catalog');
    expect(after.models.map((e) => e.id)).toEqual([models.a.id, models.c.id]);
    for (const f of m.files) expect(await bucket.hash(`${prefix}/${models.c.id}/${f.path}`)).toEqual({ bytes: f.bytes, sha256: f.sha256 });
    console.log(`[publish kill -9] rerun: ${r.objects.filter((o) => o.action === 'present').length} objects kept, ${r.objects.filter((o) => o.action === 'uploaded').length} uploaded; catalogue lists ${after.models.length}`);
  });
});
