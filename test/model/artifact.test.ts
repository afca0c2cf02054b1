import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import {
  ArtifactError,
  loadArtifact,
  readManifest,
  saveArtifact,
  updateManifestMetrics,
  verifyArtifact,
} from '../../src/model/artifact.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { Encoder } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder } from '../../src/model/types.js';
import { createFakeDualEncoder, fakeConfig } from '../eval/fake-model.js';

const captions = ['a red circle left of a blue square', 'a green star above a red circle', 'two small yellow stars'];
const tokenizer = buildTokenizer(captions, { maxLen: 12 });
const config = fakeConfig(tokenizer.vocabSize, 12, 4, 8);
const training = { data: { name: 'scenes', split: 'train', images: 3 }, method: 'clean', seed: 3, epochs: 1, lr: 3e-4 };

let root: string;
let model: DualEncoder;

beforeAll(async () => {
  await initBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mf-artifact-'));
  model = createFakeDualEncoder(config, 3);
});

afterAll(async () => {
  model?.dispose();
  if (root) await fs.rm(root, { recursive: true, force: true });
});

async function saved(name: string, extra: Partial<Parameters<typeof saveArtifact>[1]> = {}): Promise<string> {
  const dir = path.join(root, name);
  await saveArtifact(dir, { model, tokenizer, training, metrics: { clean: { tr: { R1: 12.5 } } }, ...extra });
  return dir;
}

const load = (dir: string) => loadArtifact(dir, { createModel: createFakeDualEncoder });

function pixels(n: number): Uint8Array {
  const p = new Uint8Array(n * 4 * 4 * 3);
  for (let i = 0; i < p.length; i++) p[i] = (i * 37 + 11) % 256;
  return p;
}

async function expectArtifactError(p: Promise<unknown>, message: RegExp, file?: string): Promise<void> {
  const err = await p.then(
    () => {
      throw new Error('expected an ArtifactError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArtifactError);
  expect((err as Error).message).toMatch(message);
  if (file) expect((err as ArtifactError).file).toBe(file);
}

describe('model artifact', () => {
  it('round-trips: identical weights, tokenizer and embeddings', async () => {
    const dir = await saved('roundtrip', { shardBytes: 256 }); // force several shards
    const names = (await fs.readdir(dir)).sort();
    expect(names.filter((n) => n.endsWith('.bin')).length).toBeGreaterThan(1);
    expect(names).toContain('manifest.json');
    expect(names).toContain('tokenizer.json');
    expect(names.some((n) => n.startsWith('.'))).toBe(false);
    expect((await fs.readdir(root)).some((n) => n.includes('.tmp-'))).toBe(false);

    const { model: m2, tokenizer: t2, manifest } = await load(dir);
    try {
      expect(manifest.format).toBe('manyfold-model/1');
      expect(manifest.id).toMatch(/^mf-[0-9a-f]{12}$/);
      expect(manifest.dims).toEqual({ embed: 8, imageSize: 4 });
      expect(manifest.training).toEqual(training);
      expect(manifest.config).toEqual(config);
      expect([...m2.variables.keys()]).toEqual([...model.variables.keys()]);
      for (const [name, v] of model.variables) {
        expect(Array.from(m2.variables.get(name)!.dataSync())).toEqual(Array.from(v.dataSync()));
      }
      expect(t2.toJSON()).toEqual(tokenizer.toJSON());

      const e1 = new Encoder(model, tokenizer);
      const e2 = new Encoder(m2, t2, manifest);
      expect(e2.version).toBe(manifest.id);
      expect(Array.from(await e2.embedTextsMatrix(captions))).toEqual(Array.from(await e1.embedTextsMatrix(captions)));
      expect(Array.from(await e2.embedImagesMatrix(pixels(3), 3))).toEqual(Array.from(await e1.embedImagesMatrix(pixels(3), 3)));
    } finally {
      m2.dispose();
    }
  });

  it('loads large artifacts shard by shard (re-read + re-verify) with the same result', async () => {
    const dir = await saved('streamed', { shardBytes: 256 });
    const { model: m2 } = await loadArtifact(dir, { createModel: createFakeDualEncoder, keepInMemoryBytes: 0 });
    try {
      for (const [name, v] of model.variables) {
        expect(Array.from(m2.variables.get(name)!.dataSync())).toEqual(Array.from(v.dataSync()));
      }
    } finally {
      m2.dispose();
    }
  });

  it('derives the id from content: same weights -> same id regardless of sharding; an explicit id wins', async () => {
    const a = await readManifest(await saved('id-a'));
    const b = await readManifest(await saved('id-b', { shardBytes: 64, metrics: {} }));
    expect(a.id).toBe(b.id);
    const other = createFakeDualEncoder(config, 4);
    try {
      await saveArtifact(path.join(root, 'id-c'), { model: other, tokenizer, training });
      expect((await readManifest(path.join(root, 'id-c'))).id).not.toBe(a.id);
    } finally {
      other.dispose();
    }
    expect((await readManifest(await saved('id-d', { id: 'nightly-2024-01-01' }))).id).toBe('nightly-2024-01-01');
  });

  it('refuses to overwrite unless asked, and overwrites atomically', async () => {
    const dir = await saved('overwrite');
    await expectArtifactError(saveArtifact(dir, { model, tokenizer, training }), /already exists/);
    await saveArtifact(dir, { model, tokenizer, training, metrics: { v: 2 }, overwrite: true });
    expect((await readManifest(dir)).metrics).toEqual({ v: 2 });
    expect((await fs.readdir(root)).some((n) => n.includes('.old-') || n.includes('.tmp-'))).toBe(false);
  });

  it('a tampered byte fails the hash check naming the file', async () => {
    const dir = await saved('tampered');
    const file = path.join(dir, 'weights-000.bin');
    const buf = await fs.readFile(file);
    buf[10] ^= 0x01;
    await fs.writeFile(file, buf);
    await expectArtifactError(load(dir), /weights-000\.bin failed its sha256 check/, 'weights-000.bin');
    await expectArtifactError(verifyArtifact(dir), /weights-000\.bin/, 'weights-000.bin');
  });

  it('a tampered tokenizer fails the hash check', async () => {
    const dir = await saved('tampered-tok');
    const file = path.join(dir, 'tokenizer.json');
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace('"circle"', '"circlf"'));
    await expectArtifactError(load(dir), /tokenizer\.json failed its sha256 check/, 'tokenizer.json');
  });

  it('a truncated file fails naming the file', async () => {
    const dir = await saved('truncated');
    const file = path.join(dir, 'weights-000.bin');
    const { size } = await fs.stat(file);
    await fs.truncate(file, size - 4);
    await expectArtifactError(load(dir), /weights-000\.bin has \d+ bytes, manifest says \d+ \(truncated\)/, 'weights-000.bin');
  });

  it('a missing file fails naming the file', async () => {
    const dir = await saved('missing');
    await fs.rm(path.join(dir, 'weights-000.bin'));
    await expectArtifactError(load(dir), /weights-000\.bin is missing/, 'weights-000.bin');
    await fs.rm(path.join(dir, 'manifest.json'));
    await expectArtifactError(load(dir), /not a Manyfold artifact/, 'manifest.json');
  });

  it('an invalid manifest fails with the zod path', async () => {
    const dir = await saved('bad-manifest');
    const mf = path.join(dir, 'manifest.json');
    const orig = JSON.parse(await fs.readFile(mf, 'utf8'));

    await fs.writeFile(mf, JSON.stringify({ ...orig, format: 'manyfold-model/0' }));
    await expectArtifactError(load(dir), /invalid artifact manifest .*format/, 'manifest.json');

    await fs.writeFile(mf, JSON.stringify({ ...orig, files: orig.files.map((f: { path: string }) => ({ ...f, path: '../escape.bin' })) }));
    await expectArtifactError(load(dir), /files\.0\.path: must be a plain file name/);

    await fs.writeFile(mf, JSON.stringify({ ...orig, created: 'yesterday' }));
    await expectArtifactError(load(dir), /created/);

    await fs.writeFile(mf, '{ not json');
    await expectArtifactError(load(dir), /not JSON/, 'manifest.json');
  });

  it('a wrong shape, a missing or an extra weight fails with the tensor name', async () => {
    const dir = await saved('shapes');
    const mf = path.join(dir, 'manifest.json');
    const orig = JSON.parse(await fs.readFile(mf, 'utf8'));
    type W = { name: string; shape: number[] };

    const swapped = orig.weights.map((w: W) => (w.name === 'image.proj' ? { ...w, shape: [...w.shape].reverse() } : w));
    await fs.writeFile(mf, JSON.stringify({ ...orig, weights: swapped }));
    await expectArtifactError(load(dir), /weight image\.proj .* has shape \[8, 48\] but the model expects \[48, 8\]/);

    const grown = orig.weights.map((w: W) => (w.name === 'text.proj' ? { ...w, shape: [600, 8] } : w));
    await fs.writeFile(mf, JSON.stringify({ ...orig, weights: grown }));
    await expectArtifactError(load(dir), /weight text\.proj .* needs \d+ bytes but weights-000\.bin has/);

    await fs.writeFile(mf, JSON.stringify({ ...orig, weights: orig.weights.filter((w: W) => w.name !== 'image.bias') }));
    await expectArtifactError(load(dir), /missing in the artifact: image\.bias/);

    const renamed = orig.weights.map((w: W) => (w.name === 'image.bias' ? { ...w, name: 'image.bias2' } : w));
    await fs.writeFile(mf, JSON.stringify({ ...orig, weights: renamed }));
    await expectArtifactError(load(dir), /missing in the artifact: image\.bias; not in the model: image\.bias2/);
  });

  it('updateManifestMetrics merges metrics and leaves everything else (and the id) untouched', async () => {
    const dir = await saved('metrics');
    const before = await readManifest(dir);
    const after = await updateManifestMetrics(dir, { robust: { pgd4: { tr: { R1: 3 } } } });
    expect(after.metrics).toEqual({ clean: { tr: { R1: 12.5 } }, robust: { pgd4: { tr: { R1: 3 } } } });
    expect({ ...after, metrics: null }).toEqual({ ...before, metrics: null });
    expect((await readManifest(dir)).metrics).toEqual(after.metrics);
    const replaced = await updateManifestMetrics(dir, { only: 1 }, { replace: true });
    expect(replaced.metrics).toEqual({ only: 1 });
    expect((await fs.readdir(dir)).some((n) => n.startsWith('.'))).toBe(false);
    const { model: m2 } = await load(dir); // hashes still verify
    m2.dispose();
  });

  it('refuses a tokenizer that does not fit the model config', async () => {
    const other = buildTokenizer(['completely different words here'], { maxLen: 12 });
    await expectArtifactError(saveArtifact(path.join(root, 'mismatch'), { model, tokenizer: other, training }), /vocabSize/);
  });

  it('round-trips the real dual encoder through the default factory', async () => {
    const cfg = {
      preset: 'test-mini',
      embedDim: 16,
      image: { size: 8, patch: 4, width: 16, depth: 1, heads: 2, mlpRatio: 2 },
      text: { width: 16, depth: 1, heads: 2, mlpRatio: 2, maxLen: 12, vocabSize: tokenizer.vocabSize },
      initLogitScale: Math.log(1 / 0.07),
    };
    const real = createDualEncoder(cfg, 11);
    const dir = path.join(root, 'real');
    try {
      // perturb the weights so the loaded model cannot match by re-initialising from the same seed
      for (const v of real.variables.values()) tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.01, 'float32', 5))));
      const manifest = await saveArtifact(dir, { model: real, tokenizer, training: { method: 'clean', seed: 11 } });
      const loaded = await loadArtifact(dir); // default createModel: createDualEncoder
      try {
        expect(loaded.manifest.id).toBe(manifest.id);
        const px = Uint8Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => (i * 13) % 256);
        const a = new Encoder(real, tokenizer);
        const b = new Encoder(loaded.model, loaded.tokenizer, loaded.manifest);
        expect(Array.from(await b.embedTextsMatrix(captions))).toEqual(Array.from(await a.embedTextsMatrix(captions)));
        expect(Array.from(await b.embedImagesMatrix(px, 2))).toEqual(Array.from(await a.embedImagesMatrix(px, 2)));
      } finally {
        loaded.model.dispose();
      }
    } finally {
      real.dispose();
    }
  });

  it('save and load leak no tensors', async () => {
    const before = tf.memory().numTensors;
    const dir = await saved('leaks');
    const { model: m2 } = await load(dir);
    m2.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
