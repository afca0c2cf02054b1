/**
 * `manyfold embed` (a child process, as a user runs it) and POST /v1/embed (a real server on 127.0.0.1) give the
 * same numbers for the same model and inputs: embeddings in input order, L2-normalised, and the tokenizer's ids
 * (start and end tokens, no padding). Checked for a Manyfold tiny model and for an imported CLIP (a tiny random
 * Hugging Face checkpoint from test/reference/build-checkpoints.ts, imported with importClipCheckpoint), whose
 * images must be decoded as CLIPImageProcessor does on both paths. The CLIP model is also served unchanged:
 * items, text and image search, a probe. And the texts file is validated with errors that name it.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTextsFile, parseImageList, type EmbedOutput } from '../../src/cli/commands/embed.js';
import { decodeImage, decodeSpecForModel } from '../../src/data/imageCache.js';
import { loadArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { loadEncoder } from '../../src/model/load-encoder.js';
import type { RunningServer } from '../../src/node/server.js';
import { buildTinyCheckpoint } from '../reference/build-checkpoints.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp } from './helpers.js';

const run = promisify(execFile);

let root: string;
let manyfoldDir: string;
let clipDir: string;
let imageFiles: string[];
let textsFile: string;
const TEXTS = [CAPTIONS[0], 'Two DOGS, running! 42 times', `${'a very long caption with many words '.repeat(12)}end`];

beforeAll(async () => {
  root = tmp('embed');
  manyfoldDir = (await makeModels(join(root, 'manyfold'), [3]))[0].dir;
  const ckpt = await buildTinyCheckpoint(join(root, 'ckpt'), 'hf-f32-quickgelu-argmax');
  clipDir = join(root, 'clip');
  await importClipCheckpoint({ from: ckpt.dir, out: clipDir, log: () => undefined });
  // non-square, so Manyfold's cover crop and CLIP's shortest-edge crop see different pixels
  imageFiles = [];
  for (const [i, [w, h]] of [[60, 34], [30, 70], [45, 45]].entries()) {
    const f = join(root, `img${i}.png`);
    writeFileSync(f, await png(w, h, [40 + 70 * i, 160 - 50 * i, 90], i));
    imageFiles.push(f);
  }
  textsFile = join(root, 'texts.json');
  writeFileSync(textsFile, JSON.stringify(TEXTS));
});
afterAll(() => rmrf(root));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, MANYFOLD_DEBUG: '' }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** every value within 1e-6 (float32 rounding of a different batch composition; a wrong decode moves values >1e-3) */
function expectClose(got: number[][], want: number[][]): void {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => {
    expect(row.length).toBe(want[i].length);
    const d = Math.max(...row.map((v, k) => Math.abs(v - want[i][k])));
    expect(d, `row ${i}: max |diff|`).toBeLessThanOrEqual(1e-6);
  });
}

function norm(v: number[]): number {
  return Math.sqrt(v.reduce((a, b) => a + b * b, 0));
}

/** runs `manyfold embed` and POST /v1/embed on the same inputs and checks they agree; returns both */
async function compare(modelDir: string, srv: RunningServer): Promise<{ out: EmbedOutput; api: { model: string; dim: number; texts: number[][]; images: number[][]; inputIds: number[][] } }> {
  const outFile = join(root, `out-${Math.random().toString(36).slice(2)}.json`);
  const r = await cli(['embed', '--model', modelDir, '--images', imageFiles.join(','), '--texts-file', textsFile, '--json', outFile, '--backend', 'wasm']);
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(readFileSync(outFile, 'utf8')) as EmbedOutput;
  expect(Object.keys(out).sort()).toEqual(['image_embeds', 'input_ids', 'model', 'text_embeds']);
  const call = client(srv.url);
  const res = await call('POST', '/v1/embed', { key: KEYS.search, json: { texts: TEXTS, images: imageFiles.map((f) => readFileSync(f).toString('base64')) } });
  expect(res.status, res.text).toBe(200);
  const api = res.body;
  expect(out.model).toBe(api.model);
  expect(out.image_embeds.length).toBe(imageFiles.length);
  expect(out.text_embeds.length).toBe(TEXTS.length);
  // the same numbers: same decode, same encoder. Equal up to float rounding, not bit for bit: the server
  // micro-batches what arrives together, and onnxruntime's GEMM blocking (unlike XNNPACK's) depends on the batch's
  // row count, so a row can differ in the last bits with the batch it rode in (measured <= 1e-7)
  expectClose(out.text_embeds, api.texts);
  expectClose(out.image_embeds, api.images);
  expect(out.input_ids).toEqual(api.inputIds);
  for (const v of [...out.image_embeds, ...out.text_embeds]) {
    expect(v.length).toBe(api.dim);
    expect(Math.abs(norm(v) - 1)).toBeLessThan(1e-5);
  }
  // input order: distinct inputs give distinct rows, in the order given
  expect(out.text_embeds[0]).not.toEqual(out.text_embeds[1]);
  expect(out.image_embeds[0]).not.toEqual(out.image_embeds[1]);
  return { out, api };
}

describe('manyfold embed == POST /v1/embed', () => {
  it('Manyfold tiny model: embeddings and token ids', async () => {
    const srv = await start({ modelDir: manyfoldDir, dataDir: join(root, 'data-mf') });
    try {
      const { out } = await compare(manyfoldDir, srv);
      const { tokenizer, model } = await loadArtifact(manyfoldDir);
      model.dispose();
      expect(out.input_ids).toEqual(TEXTS.map((t) => tokenizer.encode(t)));
      for (const ids of out.input_ids) expect(ids[ids.length - 1]).not.toBe(0); // no padding
      const spec = await client(srv.url)('GET', '/openapi.json');
      expect(Object.keys(spec.body.components.schemas.EmbedResponse.properties).sort()).toEqual(['dim', 'images', 'inputIds', 'model', 'texts']);
    } finally {
      await srv.close();
    }
  });

  it('imported CLIP: CLIPImageProcessor decode on both paths, SOT / EOT ids, no padding, truncation at 77', async () => {
    const srv = await start({ modelDir: clipDir, dataDir: join(root, 'data-clip') });
    try {
      const { out } = await compare(clipDir, srv);
      const { tokenizer, model } = await loadArtifact(clipDir);
      try {
        expect(model.config.family).toBe('clip');
        const ids = out.input_ids;
        expect(ids).toEqual(TEXTS.map((t) => tokenizer.encode(t)));
        const sot = ids[0][0];
        const eot = ids[0][ids[0].length - 1];
        for (const seq of ids) {
          expect(seq[0]).toBe(sot);
          expect(seq[seq.length - 1]).toBe(eot); // EOT kept even when the caption is truncated
          expect(seq.filter((t) => t === eot).length).toBe(1);
        }
        expect(ids[2].length).toBe(77);
        expect(ids[0].length).toBeLessThan(77);
        // the embeddings are those of CLIP-decoded pixels, not of Manyfold's cover decode (on the engine serve and
        // embed use by default)
        const enc = await loadEncoder(clipDir);
        const clipSpec = decodeSpecForModel(model.config);
        expect(clipSpec.resize).toBe('clip');
        const S = model.config.image.size;
        const px = async (spec: typeof clipSpec) => {
          const all = new Uint8Array(imageFiles.length * S * S * 3);
          for (const [i, f] of imageFiles.entries()) all.set(await decodeImage(readFileSync(f), spec), i * S * S * 3);
          return all;
        };
        const rows = (m: Float32Array) => Array.from({ length: imageFiles.length }, (_, i) => Array.from(m.subarray(i * enc.dim, (i + 1) * enc.dim)));
        const viaClip = rows(await enc.embedImagesMatrixAsync(await px(clipSpec), imageFiles.length));
        const viaCover = rows(await enc.embedImagesMatrixAsync(await px({ size: S, resize: 'cover', background: [255, 255, 255] }), imageFiles.length));
        await enc.dispose();
        expectClose(out.image_embeds, viaClip);
        expect(out.image_embeds[0]).not.toEqual(viaCover[0]); // 60x34: the two crops differ
      } finally {
        model.dispose();
      }
    } finally {
      await srv.close();
    }
  });

  it('imported CLIP served unchanged: items, text and image search, a probe', async () => {
    const srv = await start({ modelDir: clipDir, dataDir: join(root, 'data-serve') });
    try {
      const call = client(srv.url);
      const items = imageFiles.map((f, i) => ({ id: `it${i}`, image: readFileSync(f).toString('base64'), captions: [TEXTS[i]] }));
      const up = await call('POST', '/v1/items', { key: KEYS.write, json: { items } });
      expect(up.status, up.text).toBe(200);
      expect(up.body.items.map((x: { status: string }) => x.status)).toEqual(['created', 'created', 'created']);
      const byText = await call('POST', '/v1/search', { key: KEYS.search, json: { text: TEXTS[1], target: 'texts', topK: 1 } });
      expect(byText.status, byText.text).toBe(200);
      expect(byText.body.results[0]).toMatchObject({ id: 'it1', caption: TEXTS[1] }); // the exact caption scores 1
      const byImage = await call('POST', '/v1/search', { key: KEYS.search, json: { image: items[2].image, target: 'images', topK: 1 } });
      expect(byImage.body.results[0].id).toBe('it2');
      expect(byImage.body.results[0].score).toBeCloseTo(1, 5);
      const models = await call('GET', '/v1/models', { key: KEYS.search });
      expect(models.body.models[0]).toMatchObject({ embedDim: srv.api.service.active.encoder.dim, imageSize: 32 });
      const p = await call('POST', '/v1/probes', { key: KEYS.probe, json: { sample: 3, attacks: [{ name: 'pgd', eps: 2, steps: 1 }], resamples: 100 } });
      expect(p.status, p.text).toBe(202);
      await srv.api.probes.idle();
      const done = (await call('GET', `/v1/probes/${p.body.probe.id}`, { key: KEYS.probe })).body.probe;
      expect(done.status, done.error).toBe('succeeded');
    } finally {
      await srv.close();
    }
  });
});

describe('manyfold embed: inputs are validated, errors name the file', () => {
  it('texts file: not JSON, not an array, a non-string element, missing', async () => {
    const bad = (name: string, content: string) => {
      const f = join(root, name);
      writeFileSync(f, content);
      return f;
    };
    await expect(readTextsFile(bad('a.json', '["x",'))).rejects.toThrow(/a\.json: not valid JSON/);
    await expect(readTextsFile(bad('b.json', '{"texts": ["x"]}'))).rejects.toThrow(/b\.json: expected a JSON array of strings/);
    await expect(readTextsFile(bad('c.json', '["x", 3]'))).rejects.toThrow(/c\.json: \[1\]: .*string/);
    await expect(readTextsFile(join(root, 'nope.json'))).rejects.toThrow(/nope\.json: cannot read/);
    expect(await readTextsFile(bad('d.json', '["one", ""]'))).toEqual(['one', '']);
    expect(() => parseImageList('a.png,,b.png')).toThrow(/entry 2/);
  });

  it('the command exits 1 with the offending file named (texts file, then an unreadable image)', async () => {
    const badTexts = join(root, 'bad-texts.json');
    writeFileSync(badTexts, '[1]');
    const a = await cli(['embed', '--model', manyfoldDir, '--texts-file', badTexts]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain(`${badTexts}: [0]:`);
    const missing = join(root, 'missing.png');
    const b = await cli(['embed', '--model', manyfoldDir, '--images', `${imageFiles[0]},${missing}`, '--backend', 'wasm']);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(`${missing}: cannot read the image`);
    const c = await cli(['embed', '--model', manyfoldDir]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('give --images and/or --texts-file');
  });
});
